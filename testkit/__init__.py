"""What the tests and the benchmarks both build on, kept out of the product.

Sample data and helpers shared by tests/ and bench/: synthetic frames in the stored datasets'
shapes (:mod:`testkit.synthetic`), generated organizations on the simulator
(:mod:`testkit.generated_org`), the dashboard samples and the browser helpers. testkit may
import the product (orgscope, collectors, alerts, dashboard, sim); the product never imports
testkit, and the wheel does not contain it (pyproject.toml). mypy checks it like the product.
"""
