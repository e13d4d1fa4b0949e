"""`python -m synthbox`, and the PyInstaller entry point."""

from synthbox.cli import main

if __name__ == "__main__":
    main()
