"""Helpers shared by the sample's scripts (standard library only)."""

import json
import os


def read_config(path):
    values = {}
    with open(path) as f:
        for raw in f:
            line = raw.split("#", 1)[0].strip()
            if line:
                key, value = (part.strip() for part in line.split(":", 1))
                values[key] = float(value)
    return values


def write_json(path, value):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(value, f, indent=2)


def read_json(path):
    with open(path) as f:
        return json.load(f)
