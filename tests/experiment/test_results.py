"""Results pages (tf_spo/experiment/pages.py) and the run provenance."""

import json
import os
import subprocess

import pytest

from tests.support import runs as run_dirs
from tf_spo import experiment
from tf_spo.experiment import pages
from tf_spo.experiment import run as run_lib


def test_page_tables_hold_each_seed_and_the_means(tmp_path):
  runs = [run_dirs.fabricate(str(tmp_path), 'spo', 'snake', seed, final)
          for seed, final in ((0, 30.0), (1, 50.0))]
  trt = run_dirs.fabricate(str(tmp_path), 'trt_smc', 'snake', 0, 60.0)
  text = pages.results_page(runs + [trt], 'Snake', 'python -m launch.results x')
  assert text.startswith('# Snake\n')
  assert '    python -m launch.results x' in text
  # One group per distinct setting: the CPU preset and proposal_alpha.
  assert '## snake: the CPU preset' in text
  assert '## snake: proposal_alpha=0.1' in text
  preset = text.split('## snake: the CPU preset')[1].split('##')[0]
  # Final row: seed 0 search 30 (network 0), seed 1 50; means 40 and 0;
  # wall-clock 10 * 2 + seed seconds.
  assert '| 2,000 | 20 s: 30 / 0 | 21 s: 50 / 0 | 40 | 0 |' in preset
  assert '| 1,000 | 10 s: 15 / 0 | 11 s: 25 / 0 | 20 | 0 |' in preset
  # Fabricated runs have no provenance; the page says so.
  assert 'no provenance.jsonl' in preset


def test_provenance_records_each_start_and_what_ran_beside(tmp_path):
  root = str(tmp_path)
  experiment.record_provenance(root, None)
  experiment.record_provenance(root, 2048)
  starts = experiment.read_provenance(root)
  assert [s['resumed_from_env_steps'] for s in starts] == [None, 2048]
  assert all(s['cpu_count'] == os.cpu_count() for s in starts)
  assert isinstance(starts[0]['other_jobs'], list)
  # The source tree is this checkout: a commit is recorded.
  assert starts[0]['commit']
  with open(os.path.join(root, experiment.PROVENANCE_FILE)) as f:
    assert len([json.loads(line) for line in f]) == 2


def test_source_commit_is_dirty_for_code_changes_not_for_docs(tmp_path):
  def git(*args):
    subprocess.run(['git', '-C', str(tmp_path), *args], check=True,
                   capture_output=True)

  git('init', '-q')
  for path in ('docs/results/page.md', 'tf_spo/code.py'):
    (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / path).write_text('a\n')
  git('add', '.')
  git('-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-qm', 'c')
  commit = run_lib.source_commit(str(tmp_path / 'tf_spo'))
  assert len(commit) >= 7 and not commit.endswith('+dirty')
  # A page written by a previous generation: still the clean commit.
  (tmp_path / 'docs/results/page.md').write_text('b\n')
  assert run_lib.source_commit(str(tmp_path / 'tf_spo')) == commit
  (tmp_path / 'tf_spo/code.py').write_text('b\n')
  assert run_lib.source_commit(str(tmp_path / 'tf_spo')) == commit + '+dirty'


def test_provenance_records_jobs_started_later_and_pages_list_them(
    tmp_path, monkeypatch):
  root = run_dirs.fabricate(str(tmp_path), 'spo', 'snake', 0, 10.0)
  # A command as `_other_jobs` records it: cut at MAX_COMMAND_CHARS.
  long_job = ('python -m launch.train --x=' + 'y' * 2000)[
      :run_lib.MAX_COMMAND_CHARS]
  # A helper process's `python -c` script spans lines.
  script = 'python -c import sys\n\nif True:\n    print(1)\n'
  jobs = iter([[], [], ['python -m launch.train --env=ant'],
               ['python -m launch.train --env=ant'], [long_job, script],
               []])
  monkeypatch.setattr(run_lib, '_other_jobs', lambda: next(jobs))
  previous = experiment.record_provenance(root, None)
  for env_steps in (1000, 2000, 3000, 4000):
    previous = experiment.record_sharing(root, env_steps, previous)
  experiment.record_provenance(root, 4000)
  records = experiment.read_provenance(root)
  # A start, the two changes (no line while the jobs stay the same), the
  # resume.
  assert [r.get('env_steps', r.get('resumed_from_env_steps'))
          for r in records] == [None, 2000, 4000, 4000]
  assert [r['other_jobs'] for r in records[1:3]] == [
      ['python -m launch.train --env=ant'], [long_job, script]]
  text = pages.results_page([root], 'T', 'cmd')
  first, resumed = text.split('Runs:')[1].split(' | ')
  # The first start shows the jobs seen at its checks, each on one line and
  # the cut one marked; the resume, with nothing beside it, alone.
  assert ', beside 3 other job(s) at some point: ' in first
  assert '`python -c import sys if True: print(1)`' in first
  assert '`python -m launch.train --env=ant`' in first
  assert f'`{long_job}…`' in first
  assert resumed.startswith(records[3]['started'])
  assert resumed.rstrip().endswith(', alone')


def test_page_tabulates_evaluate_outputs_with_their_command(tmp_path):
  runs = [run_dirs.fabricate(str(tmp_path), 'spo', 'snake', seed, 10.0)
          for seed in (0, 1)]
  for run_dir, value in zip(runs, (-150.0, -130.0)):
    with open(os.path.join(run_dir, 'gym.json'), 'w') as f:
      json.dump({'command': f'python -m launch.evaluate --x={run_dir}/p',
                 'commit': 'abc', 'results': {'0': {'mean_return': value}}},
                f)
  text = pages.results_page(runs, 'T', 'cmd', evaluations=['gym.json'])
  assert '| 0 | -150 |' in text and '| 1 | -130 |' in text
  assert '| mean | -140 |' in text
  assert '    python -m launch.evaluate --x=<run_dir>/p' in text


def test_page_tabulates_each_search_of_a_scaling_output(tmp_path):
  runs = [run_dirs.fabricate(str(tmp_path), 'spo', 'snake', seed, 10.0)
          for seed in (0, 1)]
  for run_dir, (smc, gumbel) in zip(runs, ((20.0, 30.0), (40.0, 60.0))):
    os.makedirs(os.path.join(run_dir, 'scaling'))
    with open(os.path.join(run_dir, 'scaling', 'scaling.json'), 'w') as f:
      json.dump({'title': 't', 'command': (
          f'python -m launch.scaling --root_dir={run_dir}'), 'rows': [
              {'search': 'spo', 'budget': '16x4', 'mean_return': smc},
              {'search': 'gumbel', 'budget': '64', 'mean_return': gumbel}]},
                f)
  with open(os.path.join(runs[0], 'gym.json'), 'w') as f:
    json.dump({'command': 'python -m launch.evaluate', 'results': {
        '0': {'mean_return': 5.0}}}, f)
  text = pages.results_page(runs, 'T', 'cmd', evaluations=[
      'gym.json', 'scaling/scaling.json'])
  assert ('| seed | `gym.json` | `scaling/scaling.json: spo 16x4` | '
          '`scaling/scaling.json: gumbel 64` |') in text
  assert '| 0 | 5 | 20 | 30 |' in text and '| 1 |  | 40 | 60 |' in text
  assert '| mean | 5 | 30 | 45 |' in text
  assert '    python -m launch.scaling --root_dir=<run_dir>' in text


def test_archived_records_regenerate_the_same_page(tmp_path):
  runs = [run_dirs.fabricate(str(tmp_path / 'session'), 'spo', 'snake', seed,
                             final) for seed, final in ((0, 30.0), (1, 50.0))]
  for run_dir, value in zip(runs, (-150.0, -130.0)):
    experiment.record_provenance(run_dir, None)
    os.makedirs(os.path.join(run_dir, 'scaling', 'checkpoints'))
    with open(os.path.join(run_dir, 'scaling', 'scaling.json'), 'w') as f:
      json.dump({'command': f'python -m launch.scaling --root_dir={run_dir}',
                 'rows': [{'search': 'spo', 'budget': '16x4',
                           'mean_return': value}]}, f)
  os.makedirs(os.path.join(runs[0], 'checkpoints'))
  records = str(tmp_path / 'docs' / 'runs')
  evaluations = ['scaling/scaling.json']
  copies = pages.archive_records(runs, records, evaluations)
  assert copies == [os.path.join(records, 'spo_snake_s0'),
                    os.path.join(records, 'spo_snake_s1')]
  # The records only: no checkpoints, nothing else of the scaling dir.
  assert sorted(os.listdir(copies[0])) == [
      'archived_from.json', 'config.json', 'eval.csv', 'provenance.jsonl',
      'scaling']
  assert os.listdir(os.path.join(copies[0], 'scaling')) == ['scaling.json']
  original = pages.results_page(runs, 'T', 'cmd', evaluations)
  archived = pages.results_page(copies, 'T', 'cmd', evaluations)
  # The same tables and the same evaluation command (its run directory
  # written <run_dir>); the provenance names the copies and their sources.
  assert archived.split('Runs:')[0] == original.split('Runs:')[0]
  assert '| mean | -140 |' in archived
  assert '    python -m launch.scaling --root_dir=<run_dir>' in archived
  assert (f'- `{copies[1]}` (records of `{os.path.abspath(runs[1])}`) '
          '(seed 1): ') in archived
  # Archiving the copies again leaves them as they are.
  assert pages.archive_records(copies, records, evaluations) == copies
  assert pages.results_page(copies, 'T', 'cmd', evaluations) == archived
  command = pages.regenerating_command(copies, 'A title', evaluations,
                                       'docs/r.md')
  assert command == (f'python -m launch.results --run_dirs={copies[0]},'
                     f"{copies[1]} '--title=A title' "
                     '--evaluations=scaling/scaling.json --output=docs/r.md')
  other = run_dirs.fabricate(str(tmp_path / 'other'), 'spo', 'snake', 0, 1.0)
  with pytest.raises(ValueError, match=r"records_dir: .*\['spo_snake_s0'\]"):
    pages.archive_records([runs[0], other], records)
