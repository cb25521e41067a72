"""The flags the launch binaries share, and how they word library errors.

Every setting of `tf_spo.experiment.settings.SETTINGS` is a flag of the same
name (`define_setting_flags`); library errors name the argument
(`time_limit must be >= 1, got 0.`) and the binaries word them as flags
(`flag_wording`). This is the one launch module the others import.
"""

import contextlib
import re
import sys
import tempfile
import traceback
from typing import Any, Callable, Dict, Iterator

from absl import app
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
                    'minutes on a laptop CPU, "trial" trains, evaluates and '
                    'exports any task in under 3 minutes on 2 cores (to '
                    'check a setup: it learns little), "cpu_30min" (the cube) '
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


# Help flags: absl's print the docstring through `%` formatting and exit 1.
_HELP = ('--help', '-help', '-h', '-?', '--helpshort', '-helpshort')
_HELP_FULL = ('--helpfull', '-helpfull')

# Longest error message printed; the rest is in the traceback file.
_MAX_ERROR_CHARS = 300


def _print_help(main: Callable[[Any], None], full: bool) -> None:
  """The binary's docstring and its flags (every library's with `full`)."""
  module = main.__module__
  print(sys.modules[module].__doc__ or '')
  print('flags:')
  # absl files the flags a `python -m` binary defines under its path.
  own = sys.argv[0] if module == '__main__' else module
  print(FLAGS.get_help() if full else '\n'.join(
      text for text in (FLAGS.module_help(own), FLAGS.module_help(__name__))
      if text))


def one_line(error: BaseException, name_type: bool = True) -> str:
  """`error` as one line: its message's first line, at most ~300 characters.

  With `name_type`, prefixed by the error's type unless it is a
  `ValueError` (the library's name their argument).
  """
  lines = str(error).strip().splitlines() or ['']
  text = lines[0]
  if len(text) > _MAX_ERROR_CHARS:
    text = text[:_MAX_ERROR_CHARS] + '...'
  if name_type and (not isinstance(error, ValueError) or not text):
    text = f'{type(error).__name__}: {text}'
  return text


def _traceback_file() -> str:
  """Writes the current exception's traceback to a file; its path or ''."""
  try:
    with tempfile.NamedTemporaryFile(
        'w', prefix='tf_spo_error_', suffix='.txt', delete=False) as f:
      traceback.print_exc(file=f)
      return f.name
  except OSError:  # A full disk: the one line must still come out.
    return ''


@contextlib.contextmanager
def flag_errors(prefix: str = '') -> Iterator[None]:
  """A `ValueError` in the block is a bad flag: raised as a `UsageError`.

  Its message is worded for the command line (`flag_wording`), after
  `prefix`.
  """
  try:
    yield
  except ValueError as error:
    raise app.UsageError(prefix + flag_wording(error)) from None


def run(main: Callable[[Any], None]) -> None:
  """absl's `app.run(main)` with output an operator can read.

  `--help` (`-h`, `--helpshort`) prints the binary's docstring and its own
  flags and `--helpfull` every library's too, and both exit 0. Errors exit 1
  with one line on stderr: a `UsageError` (bad flags) with its message; a
  `RunPathError` (no run or SavedModel at a path flag) or `RunInUseError`
  (another process writes the run) with its message, the argument worded as
  its flag; any other exception with its type and first line and the file
  holding its traceback, or the traceback itself under `--verbose`.

  Args:
    main: absl main, called with the arguments left after the flags.
  """
  flags.DEFINE_bool('verbose', False, 'Print the traceback of an error (by '
                    'default: one line, and the file holding the traceback).')
  arguments = sys.argv[1:]
  if any(arg in _HELP + _HELP_FULL for arg in arguments):
    _print_help(main, full=any(arg in _HELP_FULL for arg in arguments))
    sys.exit(0)

  def checked_main(argv):
    try:
      main(argv)
    except app.UsageError as error:
      raise SystemExit(f'error: {one_line(error, False)}') from None
    except experiment.RunPathError as error:
      raise SystemExit(f'error: --{one_line(error, False)}') from None
    except experiment.RunInUseError as error:
      raise SystemExit(
          f'error: {flag_wording(one_line(error, False))}') from None
    except Exception as error:  # pylint: disable=broad-except
      if FLAGS.verbose:
        raise
      path = _traceback_file()
      where = f' (traceback in {path}; --verbose prints it)' if path else ''
      text = one_line(error)
      if isinstance(error, ValueError):  # The library's name an argument.
        text = flag_wording(text)
      raise SystemExit(f'error: {text}{where}') from None

  app.run(checked_main)
