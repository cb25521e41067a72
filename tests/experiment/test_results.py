"""Results pages (tf_spo/experiment/pages.py) and the run provenance."""

import json
import os

import pytest

from tests.support import runs as run_dirs
from tf_spo import experiment
from tf_spo.experiment import pages


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
