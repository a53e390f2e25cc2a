"""Errors a user can cause. The CLI prints each as one line and exits with code 2."""

from __future__ import annotations


class LearnlabError(Exception):
    """Base class of errors caused by user input (config, files, run ids)."""


class ConfigError(LearnlabError, ValueError):
    """An unknown key, a wrong type or an out-of-range value in a config."""


class StoreError(LearnlabError):
    """A missing run, a corrupt store or a missing checkpoint."""


class LeaseLost(StoreError):
    """Another process took over a run this process was training (its lease went stale)."""


class Terminated(KeyboardInterrupt):
    """The process got SIGTERM (a scheduler's time limit): handled like Ctrl-C."""


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss; the message names the step range."""
