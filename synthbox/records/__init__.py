"""The records database: its connection (`database.py`, with the engine's named
migrations), the engine's tables (`models.py`) and the job counts kept by triggers."""
