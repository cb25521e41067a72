"""Tests for environments.boxoban_levels."""

import re

import numpy as np
import pytest

from environments import boxoban_levels

# Canonical text: numbered from 0, every level followed by a blank line. The
# second level has a box on a goal ('*') and the player on a goal ('+').
TEXT = """\
; 0
##########
#@ $ .   #
#        #
#  $     #
#  .     #
#        #
#####    #
#####    #
#####    #
##########

; 1
##########
#+ $   ###
# *     ##
#       ##
##########
##########
##########
##########
##########
##########

; 2
##########
##########
###  .####
### $ ####
###  @  ##
###  $ .##
##########
##########
##########
##########

"""

# A valid level with four boxes, to be broken in the malformed-level tests.
GOOD_ROWS = [
    '##########',
    '#  .  ####',
    '# $ $ ####',
    '#  @  ####',
    '# $ $ ####',
    '# ...  ###',
    '#      ###',
    '##########',
    '##########',
    '##########',
]


def level_text(label, rows):
  return f'; {label}\n' + ''.join(row + '\n' for row in rows) + '\n'


def malformed_text(rows):
  """Two good levels, `; 5` and `; 6`, then a level `; 7` with `rows`."""
  return (level_text(5, GOOD_ROWS) + level_text(6, GOOD_ROWS) +
          level_text(7, rows))


def replaced(rows, row, col, character):
  rows = list(rows)
  rows[row] = rows[row][:col] + character + rows[row][col + 1:]
  return rows


def assert_levels_equal(a, b):
  assert a.num_levels == b.num_levels
  for name in boxoban_levels.Levels._fields:
    x, y = getattr(a, name), getattr(b, name)
    assert x.dtype == y.dtype, name
    np.testing.assert_array_equal(x, y, err_msg=name)


def cells(grid):
  return sorted(map(tuple, np.argwhere(grid).tolist()))


def test_parse_known_levels():
  levels = boxoban_levels.parse_levels(TEXT)
  assert levels.num_levels == 3
  assert levels.walls.shape == levels.targets.shape == (3, 10, 10)
  assert levels.walls.dtype == levels.boxes.dtype == bool
  assert levels.player.dtype == np.int32
  np.testing.assert_array_equal(levels.player, [[1, 1], [1, 1], [4, 5]])
  assert cells(levels.boxes[0]) == [(1, 3), (3, 3)]
  assert cells(levels.targets[0]) == [(1, 5), (4, 3)]
  assert cells(levels.walls[0][1:-1, 1:-1]) == [
      (r, c) for r in (5, 6, 7) for c in range(4)]
  # '+' is the player on a goal, '*' a box on a goal.
  assert cells(levels.boxes[1]) == [(1, 3), (2, 2)]
  assert cells(levels.targets[1]) == [(1, 1), (2, 2)]
  assert not levels.walls[1][1, 1]
  assert cells(levels.boxes[2]) == [(3, 4), (5, 5)]
  assert cells(levels.targets[2]) == [(2, 5), (5, 7)]
  assert levels.walls[:, [0, -1], :].all()
  assert levels.walls[:, :, [0, -1]].all()


def test_format_round_trips_canonical_text():
  assert boxoban_levels.format_levels(boxoban_levels.parse_levels(TEXT)) == (
      TEXT)


def test_parse_round_trips_arrays():
  levels, _ = boxoban_levels.generate_levels(50, seed=1)
  assert_levels_equal(
      boxoban_levels.parse_levels(boxoban_levels.format_levels(levels)),
      levels)


def test_format_renumbers_levels():
  text = TEXT.replace('; 1\n', '; 41\n')
  assert boxoban_levels.format_levels(
      boxoban_levels.parse_levels(text)) == TEXT


@pytest.mark.parametrize('text', [
    TEXT.replace('\n', '\r\n'),
    TEXT + '\n\n  \n\t\n',
    TEXT.rstrip('\n'),
    '\n\n' + TEXT.replace('\n\n; ', '\n\n\n; '),
    TEXT.replace('\n\n; ', '\n; '),
])
def test_parse_tolerates_line_endings_and_blank_lines(text):
  assert_levels_equal(boxoban_levels.parse_levels(text),
                      boxoban_levels.parse_levels(TEXT))


def test_parse_empty_text():
  levels = boxoban_levels.parse_levels('\n \n')
  assert levels.num_levels == 0
  assert levels.walls.shape == (0, 10, 10)
  assert levels.player.shape == (0, 2)
  assert boxoban_levels.format_levels(levels) == ''


@pytest.mark.parametrize('rows,reason', [
    (GOOD_ROWS[:9], 'expected 10 rows, got 9'),
    (GOOD_ROWS + ['##########'], 'expected 10 rows, got 11'),
    (GOOD_ROWS[:3] + [GOOD_ROWS[3][:9]] + GOOD_ROWS[4:],
     'row 3 has 9 characters'),
    (GOOD_ROWS[:2] + [GOOD_ROWS[2] + '  '] + GOOD_ROWS[3:],
     'row 2 has 12 characters'),
    (replaced(GOOD_ROWS, 6, 2, '@'), '2 players'),
    (replaced(GOOD_ROWS, 3, 3, ' '), '0 players'),
    (replaced(GOOD_ROWS, 5, 2, ' '), '4 boxes but 3 goals'),
    (replaced(GOOD_ROWS, 6, 6, '$'), '5 boxes but 4 goals'),
    # '*' is a box and a goal, '+' the player and a goal.
    (replaced(replaced(GOOD_ROWS, 6, 6, '*'), 6, 5, '.'),
     '5 boxes but 6 goals'),
    (replaced(GOOD_ROWS, 3, 3, '+'), '4 boxes but 5 goals'),
    ([row.replace('$', ' ').replace('.', ' ') for row in GOOD_ROWS],
     'no boxes'),
    (replaced(GOOD_ROWS, 6, 3, 'x'), "unknown character 'x' at row 6, col 3"),
    (replaced(GOOD_ROWS, 6, 3, '\t'), r"unknown character '\t'"),
    (replaced(GOOD_ROWS, 6, 3, '\u00e9'), "unknown character '\u00e9'"),
    (replaced(GOOD_ROWS, 6, 9, ' '), 'open border at row 6, col 9'),
    (replaced(GOOD_ROWS, 0, 4, ' '), 'open border at row 0, col 4'),
    (replaced(GOOD_ROWS, 9, 0, '*'), 'open border at row 9, col 0'),
])
def test_parse_rejects_malformed_level(rows, reason):
  with pytest.raises(ValueError, match=re.escape(f'bad.txt:7: {reason}')):
    boxoban_levels.parse_levels(malformed_text(rows), source='bad.txt')


def test_parse_rejects_header_without_rows():
  text = level_text(0, GOOD_ROWS) + '; 1\n\n' + level_text(2, GOOD_ROWS)
  with pytest.raises(ValueError, match=r'f.txt:1: expected 10 rows, got 0'):
    boxoban_levels.parse_levels(text, source='f.txt')


def test_parse_reports_first_bad_level():
  text = (level_text(0, GOOD_ROWS) +
          level_text(1, replaced(GOOD_ROWS, 6, 2, '@')) +
          level_text(2, replaced(GOOD_ROWS, 6, 3, 'x')) +
          level_text(3, GOOD_ROWS[:9]))
  with pytest.raises(ValueError, match=r'f.txt:1: 2 players'):
    boxoban_levels.parse_levels(text, source='f.txt')
  text = (level_text(0, GOOD_ROWS) +
          level_text(1, GOOD_ROWS[:9]) +
          level_text(2, replaced(GOOD_ROWS, 6, 3, 'x')))
  with pytest.raises(ValueError, match=r'f.txt:1: expected 10 rows'):
    boxoban_levels.parse_levels(text, source='f.txt')


def test_parse_rejects_text_outside_levels():
  with pytest.raises(ValueError, match=r'f.txt, line 1: .*"; N"'):
    boxoban_levels.parse_levels('hello\n' + TEXT, source='f.txt')


def test_load_levels_from_directory_and_file(tmp_path):
  first, second = TEXT.split('\n\n; 2\n')
  (tmp_path / 'b.txt').write_text('; 2\n' + second)
  (tmp_path / 'a.txt').write_text(first + '\n\n')
  (tmp_path / 'notes.md').write_text('not levels')
  (tmp_path / 'sub.txt').mkdir()
  levels = boxoban_levels.load_levels(str(tmp_path))
  assert_levels_equal(levels, boxoban_levels.parse_levels(TEXT))
  assert boxoban_levels.load_levels(str(tmp_path / 'b.txt')).num_levels == 1


def test_load_levels_names_the_bad_file(tmp_path):
  (tmp_path / 'a.txt').write_text(TEXT)
  (tmp_path / 'b.txt').write_text(malformed_text(GOOD_ROWS[:9]))
  path = str(tmp_path / 'b.txt')
  with pytest.raises(ValueError,
                     match=re.escape(f'{path}:7: expected 10 rows')):
    boxoban_levels.load_levels(str(tmp_path))


def test_errors_quote_a_huge_line_in_part_and_name_a_binary_file(tmp_path):
  huge = tmp_path / 'huge.txt'
  huge.write_text('x' * 5_000_000 + '\n' + TEXT)
  with pytest.raises(ValueError) as error:
    boxoban_levels.load_levels(str(huge))
  assert str(error.value) == (
      f'{huge}, line 1: expected a "; N" line or a blank line, got '
      "'" + 'x' * 40 + "... (5000000 characters)'.")
  # A huge `; N` label is quoted in part too.
  with pytest.raises(ValueError, match=r'^<string>:N{40}\.\.\. \(2999999 '
                     r'characters\): expected 10 rows, got 1\.$'):
    boxoban_levels.parse_levels('; ' + 'N' * 2_999_999 + '\n#\n')
  binary = tmp_path / 'levels.txt'
  binary.write_bytes(b'; 0\n\xff\xfe\x00\x01')
  with pytest.raises(ValueError, match=re.escape(
      f'{binary}: not a Boxoban level file (byte 4 is not UTF-8 text).')):
    boxoban_levels.load_levels(str(tmp_path / 'levels.txt'))


def test_load_levels_rejects_missing_or_empty_paths(tmp_path):
  with pytest.raises(ValueError, match=r'levels_dir.*does not exist'):
    boxoban_levels.load_levels(str(tmp_path / 'missing'))
  with pytest.raises(ValueError, match=r'levels_dir.*holds no levels'):
    boxoban_levels.load_levels(str(tmp_path))
  (tmp_path / 'empty.txt').write_text('\n')
  with pytest.raises(ValueError, match=r'levels_dir.*holds no levels'):
    boxoban_levels.load_levels(str(tmp_path))


def test_validate_levels_rejects_bad_arrays():
  levels = boxoban_levels.parse_levels(TEXT)
  boxoban_levels.validate_levels(levels)
  player = levels.player.copy()
  player[1] = [0, 0]
  with pytest.raises(ValueError, match=r'level 1: player at .* wall or box'):
    boxoban_levels.format_levels(levels._replace(player=player))
  player[1] = [1, 10]
  with pytest.raises(ValueError, match=r'level 1: player .* off the grid'):
    boxoban_levels.validate_levels(levels._replace(player=player))
  walls = levels.walls.copy()
  walls[2, 3, 4] = True  # Under a box.
  with pytest.raises(ValueError, match=r'level 2: box on a wall'):
    boxoban_levels.validate_levels(levels._replace(walls=walls))
  with pytest.raises(ValueError, match=r'Levels.boxes must be bool'):
    boxoban_levels.validate_levels(
        levels._replace(boxes=levels.boxes.astype(np.int32)))
  with pytest.raises(ValueError, match=r'Levels.player must be int32'):
    boxoban_levels.validate_levels(
        levels._replace(player=levels.player.astype(np.int64)))


def test_concatenate_levels():
  levels = boxoban_levels.parse_levels(TEXT)
  parts = [boxoban_levels.Levels(*(a[i:j] for a in levels))
           for i, j in ((0, 1), (1, 1), (1, 3))]
  assert_levels_equal(boxoban_levels.concatenate_levels(parts), levels)
  assert boxoban_levels.concatenate_levels([]).num_levels == 0


@pytest.mark.parametrize('num_boxes', [4, 2])
def test_generated_levels_are_valid(num_boxes):
  num_levels = 200
  levels, solutions = boxoban_levels.generate_levels(
      num_levels, seed=3, num_boxes=num_boxes)
  assert levels.num_levels == len(solutions) == num_levels
  text = boxoban_levels.format_levels(levels)
  assert_levels_equal(boxoban_levels.parse_levels(text), levels)
  np.testing.assert_array_equal(levels.boxes.sum(axis=(1, 2)), num_boxes)
  np.testing.assert_array_equal(levels.targets.sum(axis=(1, 2)), num_boxes)
  # No box starts on a goal.
  assert not (levels.boxes & levels.targets).any()
  lengths = np.array([len(s) for s in solutions])
  assert lengths.min() >= num_boxes
  assert lengths.max() <= 120
  for solution in solutions:
    assert solution.dtype == np.int32
    assert set(solution.tolist()) <= {0, 1, 2, 3}
  # Rooms of all sizes, as in Boxoban (about 32 floor cells on average).
  floor = (~levels.walls).sum(axis=(1, 2))
  assert 25 < floor.mean() < 40
  assert len(set(text.split('\n'))) > 100


def test_generate_levels_is_deterministic():
  levels, solutions = boxoban_levels.generate_levels(20, seed=7)
  again, again_solutions = boxoban_levels.generate_levels(20, seed=7)
  assert_levels_equal(levels, again)
  for a, b in zip(solutions, again_solutions):
    np.testing.assert_array_equal(a, b)
  other, _ = boxoban_levels.generate_levels(20, seed=8)
  assert boxoban_levels.format_levels(other) != boxoban_levels.format_levels(
      levels)
  # Levels within a set differ too.
  assert len({boxoban_levels.format_levels(
      boxoban_levels.Levels(*(a[i:i + 1] for a in levels)))
              for i in range(20)}) == 20


def test_generate_levels_respects_max_solution_length():
  _, solutions = boxoban_levels.generate_levels(50, seed=0,
                                                max_solution_length=30)
  assert max(len(s) for s in solutions) <= 30


@pytest.mark.parametrize('kwargs,name', [
    (dict(num_levels=-1), 'num_levels'),
    (dict(num_boxes=0), 'num_boxes'),
    (dict(num_pull_runs=0), 'num_pull_runs'),
    (dict(max_pulls_per_run=0), 'max_pulls_per_run'),
    (dict(max_solution_length=0), 'max_solution_length'),
])
def test_generate_levels_rejects_bad_arguments(kwargs, name):
  kwargs = dict(dict(num_levels=1, seed=0), **kwargs)
  with pytest.raises(ValueError, match=name):
    boxoban_levels.generate_levels(**kwargs)


def test_generate_levels_gives_up_on_impossible_rooms():
  with pytest.raises(ValueError, match=r'Discarded 1000 rooms'):
    boxoban_levels.generate_levels(1, seed=0, num_boxes=40)
