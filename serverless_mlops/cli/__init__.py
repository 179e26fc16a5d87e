"""``mlops``: the command line. Each command calls one library function; errors print one line and exit non-zero.

Sub-command groups live in their own modules (``models``, ``drift``, ``serve``, ``retrain``, ``local``, ``smoke``) and register
themselves on :data:`app` here (``common`` holds the app and the consoles they share; ``entry_point`` holds
:func:`main`, which runs it).

The top of the stack: may import everything (the domain, ``local``, ``functions`` and ``infra`` through ``local``);
nothing imports it.
"""

from __future__ import annotations

import typer

from serverless_mlops.cli import batch, cost, drift, gate, init_ci, models, retrain
from serverless_mlops.cli import labels as labels_command
from serverless_mlops.cli import local as local_command
from serverless_mlops.cli import quality as quality_command
from serverless_mlops.cli import release as release_command
from serverless_mlops.cli import serve as serve_command
from serverless_mlops.cli import shadow as shadow_command
from serverless_mlops.cli import smoke as smoke_command
from serverless_mlops.cli import ui as ui_command
from serverless_mlops.cli.common import app
from serverless_mlops.cli.entry_point import main

models.register_commands(app)
drift.register_commands(app)
serve_command.register_commands(app)
retrain.register_commands(app)
local_command.register_commands(app)
smoke_command.register_commands(app)
cost.register_commands(app)
gate.register_commands(app)
init_ci.register_commands(app)
quality_command.register_commands(app)
labels_command.register_commands(app)
release_command.register_commands(app)  # issue 17: mlops release start|status|abort
shadow_command.register_commands(app)  # issue 17: mlops shadow start|stop|report
batch.register_commands(app)  # issue 20: mlops batch score
ui_command.register_commands(app)

__all__ = ["app", "main", "typer"]
