"""nbval runs the notebooks that answer live; the replayed ones are compared in tests/.

nbval keeps the first display of a streamed answer and drops the
``update_display_data`` messages that complete it, so it cannot compare
them: ``tests/test_notebook_outputs.py`` runs each replayed notebook and
compares every cell's outputs with the saved ones (see ``outputs.py``).
"""

from outputs import REPLAYED

collect_ignore = ["outputs.py", "run.py", "record.py", *REPLAYED]
