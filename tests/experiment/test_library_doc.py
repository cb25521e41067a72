"""docs/library.md: its Python block trains, evaluates and exports a run."""

import os
import re

from tests import conftest


def test_library_doc_snippet_runs_as_written(tmp_path, monkeypatch, capsys):
  with open(os.path.join(conftest.REPO_ROOT, 'docs', 'library.md')) as f:
    [code] = re.findall(r'```python\n(.*?)```', f.read(), re.S)
  # As a user's script in their own directory.
  monkeypatch.chdir(tmp_path)
  exec(compile(code, 'library.md', 'exec'), {'__name__': '__main__'})  # pylint: disable=exec-used
  with open(tmp_path / 'runs' / 'library_cube' / 'summary.json') as f:
    assert '"env_steps": 1024' in f.read()
  first, second = capsys.readouterr().out.strip().splitlines()[-2:]
  search, network = map(float, first.split())
  assert 0 <= search <= 1 and 0 <= network <= 1
  assert second.split()[0].replace('.', '', 1).isdigit()
  for kind in ('search', 'network'):
    assert (tmp_path / 'runs' / 'library_cube' / 'export' / kind /
            'saved_model.pb').exists()
