"""`python -m synthbox`, and the PyInstaller entry point."""

import sys

if __name__ == "__main__":
    if sys.argv[1:] == ["_render-templates"]:  # synthbox.mail.rendering's worker process
        from synthbox.mail.rendering import serve_stdio

        serve_stdio()
    else:
        from synthbox.launch import main

        main()
