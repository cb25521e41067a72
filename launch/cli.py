"""The flags the launch binaries share, and how they word library errors.

Every setting of `tf_spo.experiment.settings.SETTINGS` is a flag of the same
name (`define_setting_flags`); library errors name the argument
(`time_limit must be >= 1, got 0.`) and the binaries word them as flags
(`flag_wording`). This is the one launch module the others import.
"""

import re
from typing import Any, Callable, Dict

from absl import flags

from tf_spo import experiment

FLAGS = flags.FLAGS


def flag_wording(error, names=None) -> str:
  """`error`'s message (or a text) worded for the command line.

  Library errors name the argument (`time_limit must be >= 1, got 0.`); a
  flag's name where it starts a clause (before ` must`, `=`, `:`, ` >` or
  ` needs`) and outside a `[...]` range becomes the flag:
  `--time_limit must be >= 1, got 0.`

  Args:
    error: the exception, or a text.
    names: the flag names; by default every flag defined.

  Returns:
    The message.
  """
  names = sorted(FLAGS if names is None else names, key=len, reverse=True)
  if not names:
    return str(error)
  pattern = re.compile(r'(?<![\w`.=-])(' + '|'.join(map(re.escape, names)) +
                       r')(?= must\b|=|:| >| needs\b)')
  message = str(error)

  def as_flag(match):
    before = message[:match.start()]
    in_range = before.count('[') > before.count(']')
    return match.group(1) if in_range else f'--{match.group(1)}'

  return pattern.sub(as_flag, message)


def define_setting_flags(root_dir_default: str = 'runs/cube') -> None:
  """Defines --root_dir, --preset and a flag per setting."""
  flags.DEFINE_string('root_dir', root_dir_default, 'Directory of the run.')
  flags.DEFINE_enum('preset', 'cpu', list(experiment.PRESETS),
                    'Defaults to start from, per env: "cpu" finishes in '
                    'minutes on a laptop CPU, "cpu_30min" (the cube) '
                    'trains about 30 minutes on 2 cores to a higher solve '
                    'rate, "paper" is table 3 of the SPO '
                    'paper (discrete or continuous column), "trt_smc" adds '
                    'the TRT-SMC switches. Flags given explicitly override '
                    'the preset.')
  names = [name for name, _, _ in experiment.SETTINGS]
  for name, default, text in experiment.SETTINGS:
    help_text = flag_wording(text, names)
    if isinstance(default, str):
      flags.DEFINE_string(name, default, help_text)
    elif isinstance(default, bool):
      flags.DEFINE_bool(name, default, help_text)
    elif isinstance(default, int):
      flags.DEFINE_integer(name, default, help_text)
    else:
      flags.DEFINE_float(name, default, help_text)


def settings_from_flags() -> Dict[str, Any]:
  """Flag values on top of the preset on top of the env's defaults."""
  explicit = {name: FLAGS[name].value for name in experiment.DEFAULTS
              if FLAGS[name].present}
  return experiment.resolve_settings(FLAGS.env, FLAGS.preset, explicit)


def exit_on_run_errors(main: Callable[[Any], None]) -> Callable[[Any], None]:
  """Wraps an absl `main`: a run directory it cannot use exits in one line.

  A `RunPathError` (no run or SavedModel at a path flag) or a
  `RunInUseError` (another process writes the run) exits with its message,
  the argument worded as its flag.
  """

  def checked_main(argv):
    try:
      main(argv)
    except experiment.RunPathError as error:
      raise SystemExit(f'error: --{error}') from None
    except experiment.RunInUseError as error:
      raise SystemExit(f'error: {flag_wording(error)}') from None

  return checked_main
