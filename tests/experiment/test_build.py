"""The Bazel BUILD file covers every module and every test file."""

import glob
import os
import re

from tests.conftest import REPO_ROOT

PACKAGES = ('tf_spo', 'tf_spo/experiment', 'environments', 'launch', 'tests',
            'tests/support', 'tests/unit', 'tests/environments',
            'tests/experiment', 'tests/end_to_end')


def build_sources():
  """Python files named by BUILD: literal srcs and the py_test path list."""
  with open(os.path.join(REPO_ROOT, 'BUILD')) as f:
    text = f.read()
  sources = set(re.findall(r'"([\w/]+\.py)"', text))
  tests = re.findall(r'\("(\w+/test_\w+)",\s*"(?:small|medium|large)"\)',
                     text)
  sources.update(f'tests/{path}.py' for path in tests)
  return sources, tests


def package_sources():
  return {
      os.path.relpath(path, REPO_ROOT)
      for package in PACKAGES
      for path in glob.glob(os.path.join(REPO_ROOT, package, '*.py'))
  }


def test_every_module_and_test_is_a_bazel_target():
  sources, _ = build_sources()
  missing = sorted(package_sources() - sources)
  assert not missing, f'Add these files to BUILD: {missing}'


def test_build_names_no_missing_files():
  sources, tests = build_sources()
  stale = sorted(s for s in sources
                 if not os.path.exists(os.path.join(REPO_ROOT, s)))
  assert not stale, f'BUILD names files that do not exist: {stale}'
  assert len(tests) == len(set(tests))
  assert 'experiment/test_build' in tests
