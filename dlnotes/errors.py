"""One exception type for bad input, reported by the scripts as one line."""


class ConfigError(ValueError):
    """Bad user input. ``key`` names the config key or file at fault.

    Scripts print ``error: <key>: <message>`` and exit non-zero, before compiling.
    """

    def __init__(self, key: str, message: str):
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}")


def check(condition: bool, key: str, message: str) -> None:
    """Raise ``ConfigError(key, message)`` unless ``condition``."""
    if not condition:
        raise ConfigError(key, message)
