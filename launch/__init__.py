"""Command-line entry points: train, evaluate, export, benchmark.

Every `python -m launch.<binary>` imports this package first, before
TensorFlow: it quiets the start-up noise of the libraries beneath, which an
operator cannot act on.

- TensorFlow's C++ logs (~10 lines, some at error level: CUDA factories
  registered twice, no TensorRT, CPU instructions) are off:
  `TF_CPP_MIN_LOG_LEVEL=3` unless it is set. Set `TF_CPP_MIN_LOG_LEVEL=0` to
  get them back.
- gym (a dependency of tf-agents; the tasks use gymnasium) prints that it is
  unmaintained when imported; its notice is not loaded.
- Functions converted by autograph compile with `SyntaxWarning`s about
  `is` with a literal in TF-Agents' code; they are ignored.
- MuJoCo repeats a model's compiler warnings for every environment built
  from it; each distinct warning is printed once.
"""

import os
import sys
import warnings

import mujoco

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
if 'gym_notices' not in sys.modules:
  sys.modules['gym_notices'] = None  # gym catches the ImportError.
warnings.filterwarnings('ignore', message=r'"is(?: not)?" with a literal',
                        category=SyntaxWarning)


def _print_mujoco_warnings_once() -> None:
  seen = set()

  def warn(message: str) -> None:
    if message not in seen:
      seen.add(message)
      print(f'MuJoCo warning: {message}', file=sys.stderr)

  mujoco.set_mju_user_warning(warn)


_print_mujoco_warnings_once()
