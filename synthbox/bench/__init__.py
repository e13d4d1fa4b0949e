"""`synthbox bench`: the engine measured in-process (`engine.py`) and served over HTTP by
real instances (`served.py`), with what both share (`common.py`)."""
