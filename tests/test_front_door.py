"""README's main-job command, run as a user would run it."""
import subprocess

from conftest import ROOT, base_env


def test_run_demo_makes_a_sandbox_and_lists_it(tmp_path, build):
    proc = subprocess.run([str(ROOT / "run-demo"), str(tmp_path / "box")], env=base_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert 'token "server"' in out and 'token "client"' in out
    assert "label=client-p256" in out and "label=rsa3072" in out
    assert out.count("private-key") == 7 + 2
    # Run again: the sandbox is reused, not remade.
    again = subprocess.run([str(ROOT / "run-demo"), str(tmp_path / "box")], env=base_env(),
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "reusing sandbox" in again.stdout + again.stderr
