"""docs/library.md: its Python block trains, evaluates and exports a run."""

import os
import re
import subprocess
import sys

from tests import conftest


def test_library_doc_snippet_runs_as_written(tmp_path):
  with open(os.path.join(conftest.REPO_ROOT, 'docs', 'library.md')) as f:
    [code] = re.findall(r'```python\n(.*?)```', f.read(), re.S)
  script = tmp_path / 'snippet.py'
  script.write_text(code)
  result = subprocess.run(
      [sys.executable, str(script)], cwd=tmp_path, capture_output=True,
      text=True, timeout=600,
      env=dict(os.environ, PYTHONPATH=conftest.REPO_ROOT,
               TF_CPP_MIN_LOG_LEVEL='2'))
  assert result.returncode == 0, result.stderr[-3000:]
  with open(tmp_path / 'runs' / 'library_cube' / 'summary.json') as f:
    assert '"env_steps": 1024' in f.read()
  first, second = result.stdout.strip().splitlines()[-2:]
  search, network = map(float, first.split())
  assert 0 <= search <= 1 and 0 <= network <= 1
  assert second.split()[0].replace('.', '', 1).isdigit()
  for kind in ('search', 'network'):
    assert (tmp_path / 'runs' / 'library_cube' / 'export' / kind /
            'saved_model.pb').exists()
