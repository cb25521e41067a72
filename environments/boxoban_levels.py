"""Sokoban levels in the Boxoban text format, and a level generator.

A Boxoban file holds levels of 10x10 cells, each written as a `; N` line, ten
lines of ten characters and a blank line:

  ; 0
  ##########
  #####  ..#
  ...
  ##########

with `#` a wall, `@` the player, `$` a box, `.` a goal (target) and a space
the floor; the standard Sokoban `*` (a box on a goal) and `+` (the player on a
goal) are also read. A level is valid when it has exactly one player, as many
boxes as goals (at least one) and a closed border: every cell of its outer
ring is a wall. Rows and columns are numbered from 0, as in the arrays.

`generate_levels` makes new levels by playing Sokoban backwards from a solved
position, so that the project never needs to download a level set.
"""

import os
from typing import NamedTuple

import numpy as np

SIZE = 10
# Action numbers and their (row, col) steps: 0 up, 1 right, 2 down, 3 left.
ACTION_STEPS = ((-1, 0), (0, 1), (1, 0), (0, -1))

_WALL, _PLAYER, _BOX, _GOAL, _FLOOR = '#', '@', '$', '.', ' '
_BOX_ON_GOAL, _PLAYER_ON_GOAL = '*', '+'
_CHARACTERS = (_WALL, _PLAYER, _BOX, _GOAL, _FLOOR, _BOX_ON_GOAL,
               _PLAYER_ON_GOAL)

# Character codes as numpy lookup tables over bytes.
_KNOWN = np.zeros(256, bool)
_KNOWN[[ord(c) for c in _CHARACTERS]] = True
_IS_WALL = np.zeros(256, bool)
_IS_WALL[ord(_WALL)] = True
_IS_PLAYER = np.zeros(256, bool)
_IS_PLAYER[[ord(_PLAYER), ord(_PLAYER_ON_GOAL)]] = True
_IS_BOX = np.zeros(256, bool)
_IS_BOX[[ord(_BOX), ord(_BOX_ON_GOAL)]] = True
_IS_GOAL = np.zeros(256, bool)
_IS_GOAL[[ord(_GOAL), ord(_BOX_ON_GOAL), ord(_PLAYER_ON_GOAL)]] = True

# The flat cell offsets of the actions, for the generator.
_FLAT_STEPS = tuple(SIZE * row + col for row, col in ACTION_STEPS)
# The probability that a reverse pull run moves a box on a goal, if it can.
_ON_GOAL_RUN_PROBABILITY = 0.8
# generate_levels gives up after discarding this many rooms in a row.
_MAX_DISCARDED_ROOMS = 1000
# Shapes stamped as floor by the room digger, as in gym-sokoban's generator:
# (row, col) offsets around the digger.
_DIGGER_MASKS = (
    ((0, -1), (0, 0), (0, 1)),
    ((-1, 0), (0, 0), (1, 0)),
    ((0, -1), (0, 0), (1, 0)),
    ((0, -1), (0, 0), (1, -1), (1, 0)),
    ((0, 0), (0, 1), (1, 0)),
)


class Levels(NamedTuple):
  """A batch of L Sokoban levels of 10x10 cells.

  Attributes:
    walls: bool [L, 10, 10], the walls.
    targets: bool [L, 10, 10], the goals.
    boxes: bool [L, 10, 10], the boxes.
    player: int32 [L, 2], the player's (row, col).
  """
  walls: np.ndarray
  targets: np.ndarray
  boxes: np.ndarray
  player: np.ndarray

  @property
  def num_levels(self):
    """The number L of levels."""
    return self.player.shape[0]


def empty_levels():
  """Returns a `Levels` holding no level."""
  grid = np.zeros((0, SIZE, SIZE), bool)
  return Levels(grid, grid.copy(), grid.copy(), np.zeros((0, 2), np.int32))


def concatenate_levels(level_sets):
  """Concatenates `Levels` in order.

  Args:
    level_sets: Iterable of `Levels`.

  Returns:
    `Levels` holding the levels of every element.
  """
  level_sets = list(level_sets)
  if not level_sets:
    return empty_levels()
  return Levels(*(np.concatenate(parts) for parts in zip(*level_sets)))


def _first_problem(walls, targets, boxes, num_players):
  """Finds the first invalid level, checking the grids only.

  Args:
    walls: bool [L, 10, 10].
    targets: bool [L, 10, 10].
    boxes: bool [L, 10, 10].
    num_players: int [L], the number of players in each level.

  Returns:
    None if every level is valid, else a tuple (index, reason) of the first
    invalid level.
  """
  num_boxes = boxes.sum(axis=(1, 2))
  num_goals = targets.sum(axis=(1, 2))
  ring = np.ones((SIZE, SIZE), bool)
  ring[1:-1, 1:-1] = False
  open_border = (~walls & ring).any(axis=(1, 2))
  box_on_wall = (boxes & walls).any(axis=(1, 2))
  goal_on_wall = (targets & walls).any(axis=(1, 2))
  checks = (num_players != 1, num_boxes != num_goals, num_boxes == 0,
            open_border, box_on_wall, goal_on_wall)
  bad = np.logical_or.reduce(checks)
  if not bad.any():
    return None
  i = int(np.argmax(bad))
  if checks[0][i]:
    return i, f'{num_players[i]} players, expected 1'
  if checks[1][i]:
    return i, f'{num_boxes[i]} boxes but {num_goals[i]} goals'
  if checks[2][i]:
    return i, 'no boxes'
  if checks[3][i]:
    row, col = np.argwhere(~walls[i] & ring)[0]
    return i, f'open border at row {row}, col {col}'
  if checks[4][i]:
    row, col = np.argwhere(boxes[i] & walls[i])[0]
    return i, f'box on a wall at row {row}, col {col}'
  row, col = np.argwhere(targets[i] & walls[i])[0]
  return i, f'goal on a wall at row {row}, col {col}'


def validate_levels(levels):
  """Checks `Levels` arrays against the rules of the text format.

  Args:
    levels: `Levels`.

  Raises:
    ValueError: If an array has the wrong shape or dtype, or a level is
      invalid: a player off the grid or on a wall or box, an open border,
      unequal numbers of boxes and goals, no boxes, or a box or goal on a
      wall. The message names the index of the first invalid level.
  """
  num_levels = len(levels.player)
  for name in ('walls', 'targets', 'boxes'):
    array = getattr(levels, name)
    if array.shape != (num_levels, SIZE, SIZE) or array.dtype != bool:
      raise ValueError(
          f'Levels.{name} must be bool [{num_levels}, {SIZE}, {SIZE}], got '
          f'{array.dtype} {list(array.shape)}.')
  player = levels.player
  if player.shape != (num_levels, 2) or player.dtype != np.int32:
    raise ValueError(f'Levels.player must be int32 [{num_levels}, 2], got '
                     f'{player.dtype} {list(player.shape)}.')
  off_grid = ((player < 0) | (player >= SIZE)).any(axis=1)
  if off_grid.any():
    i = int(np.argmax(off_grid))
    raise ValueError(f'level {i}: player at {player[i].tolist()} is off the '
                     'grid.')
  index = np.arange(num_levels)
  rows, cols = player[:, 0], player[:, 1]
  blocked = levels.walls[index, rows, cols] | levels.boxes[index, rows, cols]
  if blocked.any():
    i = int(np.argmax(blocked))
    raise ValueError(f'level {i}: player at {player[i].tolist()} is on a wall '
                     'or box.')
  problem = _first_problem(levels.walls, levels.targets, levels.boxes,
                           np.ones(num_levels, int))
  if problem is not None:
    raise ValueError(f'level {problem[0]}: {problem[1]}.')


def _split_blocks(text, source):
  """Splits Boxoban text into levels.

  Args:
    text: str, the contents of a level file.
    source: str, the name of the text in error messages.

  Returns:
    A tuple (labels, rows, error): the N of every `; N` line, the rows of
    every level up to the first level of the wrong shape, and None or a
    tuple (number of levels before the bad one, message) for that level.

  Raises:
    ValueError: If a line outside a level is not blank or a `; N` line.
  """
  labels, rows = [], []
  level_rows = None
  # Only '\n' and '\r' end a row: spaces at a row's end are floor.
  lines = [line.rstrip('\r') for line in text.split('\n')]

  def finish(rows_of_level, label):
    if len(rows_of_level) != SIZE:
      return (f'{source}:{label}: expected {SIZE} rows, got '
              f'{len(rows_of_level)}')
    for r, (row, line_number) in enumerate(rows_of_level):
      if len(row) != SIZE:
        return (f'{source}:{label}: row {r} has {len(row)} characters, '
                f'expected {SIZE} (line {line_number})')
    rows.append([row for row, _ in rows_of_level])
    return None

  for line_number, line in enumerate(lines, start=1):
    if level_rows is not None:
      if line.strip() and not line.startswith(';'):
        level_rows.append((line, line_number))
        continue
      error = finish(level_rows, labels[-1])
      if error:
        return labels, rows, (len(rows), error)
      level_rows = None
    if line.startswith(';'):
      labels.append(_excerpt(line[1:].strip()))
      level_rows = []
    elif line.strip():
      raise ValueError(f'{source}, line {line_number}: expected a "; N" line '
                       f'or a blank line, got {_excerpt(line)!r}.')
  if level_rows is not None:
    error = finish(level_rows, labels[-1])
    if error:
      return labels, rows, (len(rows), error)
  return labels, rows, None


# Longest piece of a line of a level file an error message quotes.
_MAX_QUOTED = 40


def _excerpt(line: str) -> str:
  """`line`, cut to `_MAX_QUOTED` characters and its length, for messages."""
  if len(line) <= _MAX_QUOTED:
    return line
  return f'{line[:_MAX_QUOTED]}... ({len(line)} characters)'


def parse_levels(text, source='<string>'):
  """Parses levels in the Boxoban text format.

  Each level is a `; N` line followed by its rows; a level's rows end at a
  blank (or whitespace-only) line, the next `; N` line or the end of the
  text. Lines may end in CR LF; blank lines between levels and at the end
  are ignored.

  Args:
    text: str, the levels.
    source: str, the name of the text (a file path) in error messages.

  Returns:
    `Levels` in the order of the text.

  Raises:
    ValueError: If a level is malformed: not 10 rows of exactly 10
      characters, an unknown character, not exactly one player, unequal
      numbers of boxes and goals or no box, or an open border. The message
      starts with `{source}:{N}`, N from the level's `; N` line, and gives
      the reason. Also if text outside a level is not blank.
  """
  labels, rows, error = _split_blocks(text, source)
  num_levels = len(rows)
  joined = ''.join(''.join(level_rows) for level_rows in rows)
  if joined.isascii():
    codes = np.frombuffer(joined.encode('ascii'), np.uint8)
  else:
    codes = np.frombuffer(joined.encode('utf-32-le'), np.uint32)
  codes = codes.reshape(num_levels, SIZE, SIZE)
  # Characters beyond a byte are unknown; clip them onto an unknown byte.
  bytes_ = np.where(codes < 256, codes, 0).astype(np.uint8)
  unknown = (codes >= 256) | ~_KNOWN[bytes_]
  bad_character = unknown.any(axis=(1, 2))
  walls, targets, boxes = _IS_WALL[bytes_], _IS_GOAL[bytes_], _IS_BOX[bytes_]
  players = _IS_PLAYER[bytes_]
  problem = _first_problem(walls, targets, boxes, players.sum(axis=(1, 2)))
  first_bad = num_levels if problem is None else problem[0]
  if bad_character.any() and np.argmax(bad_character) <= first_bad:
    i = int(np.argmax(bad_character))
    row, col = np.argwhere(unknown[i])[0]
    character = chr(codes[i, row, col])
    raise ValueError(f'{source}:{labels[i]}: unknown character '
                     f'{character!r} at row {row}, col {col}.')
  if problem is not None:
    raise ValueError(f'{source}:{labels[problem[0]]}: {problem[1]}.')
  if error is not None:
    raise ValueError(error[1] + '.')
  player = np.argwhere(players)[:, 1:].astype(np.int32)
  return Levels(walls, targets, boxes, player.reshape(num_levels, 2))


def format_levels(levels):
  """Writes levels in the Boxoban text format, numbered from 0.

  Boxes on goals are written `*` and the player on a goal `+`.

  Args:
    levels: Valid `Levels`.

  Returns:
    str, such that `parse_levels` of it equals `levels`.

  Raises:
    ValueError: If `levels` is not valid (see `validate_levels`).
  """
  validate_levels(levels)
  grid = np.full(levels.walls.shape, _FLOOR)
  grid[levels.targets] = _GOAL
  grid[levels.walls] = _WALL
  grid[levels.boxes] = np.where(levels.targets, _BOX_ON_GOAL,
                                _BOX)[levels.boxes]
  index = np.arange(levels.num_levels)
  rows, cols = levels.player[:, 0], levels.player[:, 1]
  grid[index, rows, cols] = np.where(levels.targets[index, rows, cols],
                                     _PLAYER_ON_GOAL, _PLAYER)
  parts = []
  for i, level in enumerate(grid):
    parts.append(f'; {i}\n')
    parts.extend(''.join(row) + '\n' for row in level)
    parts.append('\n')
  return ''.join(parts)


def load_levels(path):
  """Reads levels from a Boxoban file or a directory of them.

  Args:
    path: str, a level file, or a directory whose `*.txt` files are read in
      sorted order and concatenated.

  Returns:
    `Levels`.

  Raises:
    ValueError: If the path does not exist or holds no levels, or a level is
      malformed (the message names its file and `; N` number).
  """
  if os.path.isdir(path):
    paths = sorted(os.path.join(path, name) for name in os.listdir(path)
                   if name.endswith('.txt') and
                   os.path.isfile(os.path.join(path, name)))
  elif os.path.isfile(path):
    paths = [path]
  else:
    raise ValueError(f'levels_dir: {path!r} does not exist.')
  level_sets = []
  for file_path in paths:
    with open(file_path, encoding='utf-8') as f:
      try:
        text = f.read()
      except UnicodeDecodeError as error:
        raise ValueError(
            f'{file_path}: not a Boxoban level file (byte {error.start} is not '
            'UTF-8 text).') from None
    level_sets.append(parse_levels(text, source=file_path))
  levels = concatenate_levels(level_sets)
  if not levels.num_levels:
    raise ValueError(f'levels_dir: {path!r} holds no levels (a Boxoban '
                     '.txt file, or a directory of them).')
  return levels


def _carve_room(rng, num_digger_steps, change_probability):
  """Carves a connected room inside the closed border by a random walk.

  A digger starts on a random inner cell, walks `num_digger_steps` steps,
  changing to a random direction with probability `change_probability`
  before each step and staying inside the border, and stamps a random small
  shape of floor around every cell it visits, as gym-sokoban's generator.

  Args:
    rng: `np.random.Generator`.
    num_digger_steps: Python int, the length of the walk.
    change_probability: Python float, the probability of turning.

  Returns:
    A list of 100 bools, the walls of the room in flat (row * 10 + col)
    order.
  """
  walls = [True] * (SIZE * SIZE)
  row, col = (int(x) for x in rng.integers(1, SIZE - 1, size=2))
  direction = ACTION_STEPS[int(rng.integers(4))]
  turns = (rng.random(num_digger_steps) < change_probability).tolist()
  new_directions = rng.integers(4, size=num_digger_steps).tolist()
  masks = rng.integers(len(_DIGGER_MASKS), size=num_digger_steps).tolist()
  for turn, new_direction, mask in zip(turns, new_directions, masks):
    if turn:
      direction = ACTION_STEPS[new_direction]
    row = min(max(row + direction[0], 1), SIZE - 2)
    col = min(max(col + direction[1], 1), SIZE - 2)
    for d_row, d_col in _DIGGER_MASKS[mask]:
      r, c = row + d_row, col + d_col
      if 0 < r < SIZE - 1 and 0 < c < SIZE - 1:
        walls[SIZE * r + c] = False
  return walls


def _reachable(walls, is_box, start):
  """Finds the cells the player reaches without moving a box.

  Args:
    walls: list of 100 bools.
    is_box: list of 100 bools.
    start: int, the player's flat cell.

  Returns:
    A dict from every reachable cell to a tuple (previous cell, direction
    moved from it), or None for `start`.
  """
  parents = {start: None}
  queue = [start]
  for cell in queue:
    for direction, step in enumerate(_FLAT_STEPS):
      neighbour = cell + step
      if (neighbour not in parents and not walls[neighbour] and
          not is_box[neighbour]):
        parents[neighbour] = (cell, direction)
        queue.append(neighbour)
  return parents


def _reverse_play(rng, walls, num_boxes, num_pull_runs, max_pulls_per_run,
                  max_solution_length):
  """Places boxes on goals and plays backwards from there.

  Args:
    rng: `np.random.Generator`.
    walls: list of 100 bools, the room.
    num_boxes: Python int, the number of boxes and goals.
    num_pull_runs: Python int, the number of pull runs.
    max_pulls_per_run: Python int >= 1, the most pulls in a run.
    max_solution_length: Python int, the longest forward solution kept.

  Returns:
    None if the room is rejected, else a tuple (targets, boxes, player,
    solution): the goal and box cells (lists of flat indices), the player's
    flat cell and the forward solution, a list of actions.
  """
  floor = [i for i, wall in enumerate(walls) if not wall]
  # A box can only leave a goal with two floor cells in line beside it.
  movable = [cell for cell in floor
             if any(not walls[cell - step] and not walls[cell - 2 * step]
                    for step in _FLAT_STEPS)]
  if len(movable) < num_boxes or len(floor) < num_boxes + 2:
    return None
  targets = rng.choice(movable, size=num_boxes, replace=False).tolist()
  others = [cell for cell in floor if cell not in targets]
  player = others[int(rng.integers(len(others)))]
  is_target = [False] * (SIZE * SIZE)
  for cell in targets:
    is_target[cell] = True
  is_box = list(is_target)
  boxes = list(targets)
  boxes_on_targets = num_boxes
  # actions[i] is the forward action from reverse position i + 1 to i.
  actions = []
  # The number of reverse moves to the last position with every box on a
  # goal, and the last position with every box off its goal.
  last_solved = 0
  best = None

  def free(cell):
    return not walls[cell] and not is_box[cell]

  # The positions at the starts of the runs made, to backtrack to.
  saved = []
  for _ in range(3 * num_pull_runs):
    if len(saved) == num_pull_runs or len(actions) - last_solved == (
        max_solution_length):
      break
    parents = _reachable(walls, is_box, player)
    # The pulls that can start a run: the player reaches p, the box is at
    # p + step and the cell p - step is free.
    candidates = []
    for index, box in enumerate(boxes):
      for direction, step in enumerate(_FLAT_STEPS):
        if box - step in parents and free(box - 2 * step):
          candidates.append((index, direction))
    if not candidates:
      if not saved:
        break
      # Reverse play is stuck (the player shut in by the box it pulled):
      # undo the last run and try again.
      (is_box, boxes, player, boxes_on_targets, last_solved, best,
       num_actions) = saved.pop()
      del actions[num_actions:]
      continue
    saved.append((list(is_box), list(boxes), player, boxes_on_targets,
                  last_solved, best, len(actions)))
    # Most runs move a box that is on a goal, if one can be moved.
    on_goal = [c for c in candidates if is_target[boxes[c[0]]]]
    if on_goal and rng.random() < _ON_GOAL_RUN_PROBABILITY:
      candidates = on_goal
    index, direction = candidates[int(rng.integers(len(candidates)))]
    step = _FLAT_STEPS[direction]
    # Walk to p = box - step: the forward solution walks the path back.
    cell = boxes[index] - step
    path = []
    while parents[cell] is not None:
      cell, walked = parents[cell]
      path.append((walked + 2) % 4)
    moves = path[::-1] + [None] * int(rng.integers(1, max_pulls_per_run + 1))
    for move in moves:
      if move is None:  # A pull.
        box = player + step
        if not free(player - step):
          break
        is_box[box] = False
        is_box[player] = True
        boxes[index] = player
        boxes_on_targets += is_target[player] - is_target[box]
        player -= step
        actions.append(direction)
      else:  # Walking backwards with forward action `move`.
        player -= _FLAT_STEPS[move]
        actions.append(move)
      if boxes_on_targets == num_boxes:
        last_solved = len(actions)
      elif boxes_on_targets == 0:
        best = (list(boxes), player, len(actions), last_solved)
      if len(actions) - last_solved == max_solution_length:
        break
  if best is None:
    return None
  boxes, player, end, start = best
  return targets, boxes, player, actions[start:end][::-1]


def generate_levels(num_levels, seed, num_boxes=4, num_digger_steps=40,
                    change_probability=0.35, num_pull_runs=10,
                    max_pulls_per_run=3, max_solution_length=120):
  """Generates solvable levels by playing Sokoban backwards.

  For each level a room is carved inside the closed 10x10 border by a random
  walk of a digger (see `_carve_room`); `num_boxes` goals are placed on
  distinct random floor cells from which a box can be pulled (two floor cells
  in line beside it), with a box on each, and the player on another floor
  cell. Then the game is played in reverse for `num_pull_runs` runs. Each run
  picks a random box and direction d in which it can be pulled (with
  probability 0.8 among boxes on goals, if any can be), walks the player by a
  shortest path to the cell p next to the box (the box at p + d), and pulls
  it up to `max_pulls_per_run` times (uniformly from 1): the player steps
  back to p - d, which must be free (no wall, no box), and the box follows
  onto p. When no box can be pulled (the player shut in behind a box it
  pulled) the last run is undone. Every reverse move is undone by a forward
  action, a plain move or a push in direction d, so the reversed sequence
  solves the level.

  The level is the last position reached in which every box is off every
  goal (as in Boxoban, no level starts with a box on a goal); a room that
  never reaches such a position is discarded and a new room is carved
  (about half of them). The forward solution ends at the first position in
  which all boxes are on goals, so it solves the level exactly on its last
  action, and reverse play stops before it grows beyond
  `max_solution_length` actions. The solutions are not optimal.

  Args:
    num_levels: Python int >= 0, the number of levels.
    seed: Python int, the seed of `np.random.default_rng`; the levels are a
      deterministic function of the arguments.
    num_boxes: Python int >= 1, the number of boxes (and goals) per level.
    num_digger_steps: Python int, the length of the room digger's walk.
    change_probability: Python float, the digger's probability of turning.
    num_pull_runs: Python int >= 1, the number of reverse pull runs.
    max_pulls_per_run: Python int >= 1, the most pulls in a run.
    max_solution_length: Python int >= 1, the most actions in a solution
      (the episode's time limit).

  Returns:
    A tuple (levels, solutions): valid `Levels` of `num_levels` levels, and
    a list of `num_levels` int32 arrays, the forward actions (0 up, 1 right,
    2 down, 3 left) that solve each level.

  Raises:
    ValueError: If an argument is out of range, or 1000 rooms in a row are
      discarded (too many boxes for the rooms).
  """
  for name, value, minimum in (
      ('num_levels', num_levels, 0), ('num_boxes', num_boxes, 1),
      ('num_digger_steps', num_digger_steps, 1),
      ('num_pull_runs', num_pull_runs, 1),
      ('max_pulls_per_run', max_pulls_per_run, 1),
      ('max_solution_length', max_solution_length, 1)):
    if value < minimum:
      raise ValueError(f'{name} must be >= {minimum}, got {value}.')
  rng = np.random.default_rng(seed)
  walls = np.zeros((num_levels, SIZE * SIZE), bool)
  targets = np.zeros_like(walls)
  boxes = np.zeros_like(walls)
  player = np.zeros(num_levels, np.int32)
  solutions = []
  discarded = 0
  while len(solutions) < num_levels:
    room = _carve_room(rng, num_digger_steps, change_probability)
    result = _reverse_play(rng, room, num_boxes, num_pull_runs,
                           max_pulls_per_run, max_solution_length)
    if result is None:
      discarded += 1
      if discarded == _MAX_DISCARDED_ROOMS:
        raise ValueError(
            f'Discarded {discarded} rooms in a row: cannot generate levels '
            f'with num_boxes={num_boxes}, num_digger_steps='
            f'{num_digger_steps}.')
      continue
    discarded = 0
    i = len(solutions)
    walls[i] = room
    targets[i, result[0]] = True
    boxes[i, result[1]] = True
    player[i] = result[2]
    solutions.append(np.array(result[3], np.int32))
  shape = (num_levels, SIZE, SIZE)
  levels = Levels(walls.reshape(shape), targets.reshape(shape),
                  boxes.reshape(shape),
                  np.stack(np.divmod(player, SIZE), axis=1).astype(np.int32))
  return levels, solutions
