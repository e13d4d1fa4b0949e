"""`python -m synthbox`, and the PyInstaller entry point."""

from synthbox.launch import main

if __name__ == "__main__":
    main()
