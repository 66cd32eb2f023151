"""Behaviour is preserved: each smoke config's state after 5 iterations is bit-identical to the
fixture recorded before the core was restructured (tests/fixtures/make_smoke_checksums.py).

Bit-identity holds for one JAX/XLA build; with other versions than the fixture's the numbers
may differ in the last bits, so the test is skipped there (CI installs the pinned versions of
.ci/constraints.txt).
"""

import json
import os

import jax
import pytest

from tests.fixtures import make_smoke_checksums as fixture

PATH = os.path.join(os.path.dirname(__file__), "fixtures", "smoke_checksums.json")
with open(PATH, encoding="utf-8") as _f:
  RECORD = json.load(_f)


def test_fixture_covers_every_config():
  from gan_jax import configs  # pylint: disable=g-import-not-at-top

  assert set(configs.names()) <= {name for name, _ in fixture.RUNS.values()}
  assert set(RECORD["runs"]) == set(fixture.RUNS)


@pytest.mark.skipif(
  jax.__version__ != RECORD["jax"], reason=f"fixture recorded with jax {RECORD['jax']}"
)
@pytest.mark.parametrize("name", sorted(fixture.RUNS))
def test_final_state_is_bit_identical(name):
  got = fixture.train_checksums(name)
  expected = RECORD["runs"][name]
  assert sorted(got) == sorted(expected)
  differ = sorted(k for k in expected if got[k] != expected[k])
  assert not differ, f"{len(differ)} leaves differ, e.g. {differ[:3]}"
