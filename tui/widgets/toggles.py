"""Radio buttons and checkboxes whose state shows in the glyph itself, not only in colour.

Textual draws the same inner glyph on and off (● for a radio, X for a checkbox) and tells them
apart by colour alone: under NO_COLOR, on a 16-colour terminal or in a plain-text screen dump they
looked the same. Here the glyph changes too (the CSS adds bold reverse when on).
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.widgets import Checkbox, RadioButton
from textual.widgets._toggle_button import ToggleButton


class StateGlyph(ToggleButton):
    """The inner glyph follows the value: ON when on, OFF when off.

    A second base after Textual's own class (class X(RadioButton, StateGlyph)), so the widget
    keeps that class's CSS type name and RadioSet still finds its buttons."""

    ON: ClassVar[str] = ""
    OFF: ClassVar[str] = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.BUTTON_INNER = self.ON if self.value else self.OFF

    def watch_value(self) -> None:
        self.BUTTON_INNER = self.ON if self.value else self.OFF
        super().watch_value()


class MarkedRadioButton(RadioButton, StateGlyph):
    ON = "●"
    OFF = "○"


class MarkedCheckbox(Checkbox, StateGlyph):
    ON = "X"
    OFF = " "
