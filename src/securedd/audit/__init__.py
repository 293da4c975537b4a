"""Audits of distilled data: utility, what it leaks about the real images it came from, robustness, fairness.

The stages are registered functions (:data:`~securedd.audit.stages.AUDIT_STAGES`);
:func:`~securedd.audit.suite.run_audit` runs them and :mod:`securedd.audit.report`
writes the findings.
"""
