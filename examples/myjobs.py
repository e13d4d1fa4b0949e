"""A `python` job: the function gets the job's data and returns its result (JSON values).
An exception fails the attempt. `isolation = "process"` runs it in a child process."""


def resize(data):
    return {"resized": data["image"], "width": data.get("width", 640) // 2}
