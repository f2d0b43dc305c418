"""Load scenarios (locust) and the fan-out benchmark."""
