"""The two ways a long job reports how far it got, each named once."""

from __future__ import annotations

from collections.abc import Callable

# One line of news for the user ("restoring base backup ..."): `say` in tasks.
Say = Callable[[str], None]
# A stage and how far it is: ("indexes", 3, 7); a caller draws a bar or prints a line.
Progress = Callable[[str, int, int], None]
