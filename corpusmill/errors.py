"""Errors a user can act on: each prints as one line and maps to an exit code."""

from __future__ import annotations


class CorpusmillError(Exception):
    """Base class; ``exit_code`` is what the CLI returns."""

    exit_code = 1


class ConfigError(CorpusmillError):
    """A build config that does not validate; the message names the key path."""

    exit_code = 2

    def __init__(self, where: str, path: str, message: str) -> None:
        self.where = where
        self.path = path
        self.message = message
        super().__init__(f"{where}: {path}: {message}" if path else f"{where}: {message}")

    def at(self, where: str) -> ConfigError:
        """The same error reported against another file name."""
        return ConfigError(where, self.path, self.message)


class InputError(CorpusmillError):
    """Bad input data; ``where`` is ``FILE:LINE`` (or a URL) so the user can open the spot."""

    def __init__(self, where: str, message: str) -> None:
        self.where = where
        self.reason = message
        super().__init__(f"{where}: {message}")


class ReleaseError(CorpusmillError):
    """A release that cannot be written or does not verify."""
