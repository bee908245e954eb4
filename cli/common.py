"""What every command shares: the settings, read once, with a plain error instead of a
traceback when the configuration is bad."""

from __future__ import annotations

import sys

import click

from trackrecord.config import ConfigError, Settings


def load_settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        # A bad file stops the process at start with the file, key and problem, not a traceback.
        click.echo(f"trackrecord: configuration error:\n{exc}", err=True)
        sys.exit(2)
