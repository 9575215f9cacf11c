"""bin/status --check-config: the checks every run starts with, alone."""


def test_check_config_reports_sound_settings(ops):
    result = ops.run("status", "--check-config", timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("settings sound: ") and "validate" in result.stdout


def test_check_config_names_every_broken_rule_in_one_line(ops, root):
    ops.set("validate", "psi_fail", "0.05")
    ops.set("model", "retrian", "monthly")
    result = ops.run("status", "--check-config", timeout=120)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "[model] retrian: unknown key; did you mean retrain?" in result.stderr
    assert "[validate] psi_warn = 0.1, psi_fail = 0.05: must be psi_warn < psi_fail" in result.stderr
    assert list(root.iterdir()) == []
