"""The job engine: records, doorbells, workers and upkeep. It knows nothing of the web."""
