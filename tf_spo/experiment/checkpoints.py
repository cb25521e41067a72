"""A run's checkpoint directory: which checkpoints it holds, read safely.

A checkpoint is either complete and verified or ignored. The state file
(`checkpoint`) lists a directory's checkpoints; when it is missing or
unreadable, the list is derived from the checkpoint files present. The
writer of a run (`repair`) sets aside checkpoints that do not read back
(truncated, flipped bytes, a missing data file), removes what an interrupted
save leaves (`*_temp*` directories, checkpoints the state file does not
list) and rewrites the state file; readers (`newest_readable`) change
nothing.
"""

import os
import re
import shutil
from typing import List, Optional

import tensorflow as tf

STATE_FILE = 'checkpoint'
_NUMBERED = re.compile(r'ckpt-(\d+)\.index$')


def _present(checkpoint_dir: str) -> List[str]:
  """Prefixes of the checkpoints whose index file is present, oldest first.

  Under `checkpoint_dir` as given (relative or absolute), as TensorFlow
  reads them from the state file.
  """
  found = []
  for path in tf.io.gfile.glob(os.path.join(checkpoint_dir, 'ckpt-*.index')):
    match = _NUMBERED.search(os.path.basename(path))
    if match:
      found.append((int(match.group(1)), path[:-len('.index')]))
  return [prefix for _, prefix in sorted(found)]


def listed(checkpoint_dir: str) -> List[str]:
  """The directory's checkpoints, oldest first.

  From its state file, or, if the state file is missing or unreadable while
  checkpoint files are present, from those files (a message says so).

  Returns:
    The checkpoint prefixes, under `checkpoint_dir`.
  """
  try:
    state = tf.train.get_checkpoint_state(checkpoint_dir)
  # Binary garbage fails to decode (text garbage parses to None).
  except (ValueError, tf.errors.OpError):
    state = None
  if state is not None:
    # Joined to `checkpoint_dir` by TensorFlow where the file has them
    # relative.
    return list(state.all_model_checkpoint_paths)
  present = _present(checkpoint_dir)
  if present:
    state_path = os.path.join(checkpoint_dir, STATE_FILE)
    what = ('is unreadable' if tf.io.gfile.exists(state_path)
            else 'is missing')
    print(f'[checkpoint] {state_path} {what}; using the checkpoints present: '
          f'{", ".join(os.path.basename(p) for p in present)}.', flush=True)
  return present


def readable(prefix: str) -> bool:
  """Whether every tensor of the checkpoint reads back; reports it if not.

  Reads every tensor (checksums included), so truncated files, flipped
  bytes and missing data files are all caught.
  """
  try:
    reader = tf.train.load_checkpoint(prefix)
    for name in reader.get_variable_to_shape_map():
      reader.get_tensor(name)
  # A truncated data file raises IndexError from the reader.
  except (tf.errors.OpError, ValueError, IndexError) as error:
    print(f'[checkpoint] {prefix} is unreadable ({type(error).__name__}: '
          f'{str(error).splitlines()[0][:200]}); using the previous '
          'checkpoint.', flush=True)
    return False
  return True


def newest_readable(checkpoint_dir: str) -> Optional[str]:
  """The newest checkpoint that reads back, or None; changes nothing."""
  return next((prefix for prefix in reversed(listed(checkpoint_dir))
               if readable(prefix)), None)


def repair(checkpoint_dir: str) -> None:
  """Makes the newest readable checkpoint the latest; removes the rest.

  For the run's writer, before it restores. Unreadable checkpoints are
  reported and renamed with an `.unreadable` suffix (kept for inspection);
  checkpoint files the (derived) list does not hold and `*_temp*`
  directories, which an interrupted save leaves, are removed; the state file
  is rewritten to the readable checkpoints.

  Raises:
    ValueError: naming the directory if it has checkpoints but none reads.
  """
  if not tf.io.gfile.isdir(checkpoint_dir):
    return
  paths = listed(checkpoint_dir)
  for temp in tf.io.gfile.glob(os.path.join(checkpoint_dir, '*_temp*')):
    if tf.io.gfile.isdir(temp):
      shutil.rmtree(temp, ignore_errors=True)
    else:
      tf.io.gfile.remove(temp)
  # The state file may hold absolute paths and the directory be given
  # relative (or the other way round): compare absolute ones.
  kept = {os.path.abspath(path) for path in paths}
  for prefix in _present(checkpoint_dir):
    if os.path.abspath(prefix) not in kept:
      for path in tf.io.gfile.glob(prefix + '.*'):
        tf.io.gfile.remove(path)
  while paths and not readable(paths[-1]):
    for path in tf.io.gfile.glob(paths.pop() + '.*'):
      tf.io.gfile.rename(path, path + '.unreadable', overwrite=True)
  if not paths:
    if _present(checkpoint_dir) or tf.io.gfile.glob(
        os.path.join(checkpoint_dir, '*.unreadable')):
      raise ValueError(f'{checkpoint_dir} holds no readable checkpoint; move '
                       'it away to start the run over.')
    return
  # TensorFlow writes them relative to the directory.
  tf.compat.v1.train.update_checkpoint_state(
      checkpoint_dir, paths[-1], all_model_checkpoint_paths=paths)
