"""The ids of a model-compose file's components, actions, workflows and jobs: letters, digits
and . _ -, starting with a letter or digit (a vector store keeps its index in a folder of its
id's name)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

Id = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="letters, digits and . _ -, starting with a letter or digit; 64 at most",
    ),
]
