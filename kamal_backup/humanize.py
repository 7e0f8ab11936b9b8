"""Sizes and ages as operators read them."""

from __future__ import annotations


def human_bytes(size: int | None) -> str:
    """'512 B', '1.5 MiB'; empty for an unknown size."""
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def describe_age(seconds: float) -> str:
    """A short human age: '45s', '12m', '3h 5m', '2d 4h'."""
    value = max(0, int(seconds))
    if value < 60:
        return f"{value}s"
    minutes, _ = divmod(value, 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h" if hours else f"{days}d"


def check_word(status: str) -> str:
    """One word per check outcome, in the CLI, the TUI and their logs: passed or failed."""
    return "passed" if status == "success" else "failed"


def count(number: int, singular: str, plural: str | None = None) -> str:
    """`1 snapshot`, `2 snapshots`: a number with its noun in the right form."""
    return f"{number:,} {singular if number == 1 else plural or singular + 's'}"
