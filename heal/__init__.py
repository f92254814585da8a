"""Auto-heal (docs/heal.md): the only code that writes to AWS, in plain sight beside alerts/.

``policy`` (which DISABLED rules are safe to re-enable: pure), ``actions`` (each action's
policy, executor and IAM permissions), ``run`` (the ``heal`` step and ``orgscope heal``: read
the store, act through the heal role, write the ``heal_actions`` audit log).
"""
