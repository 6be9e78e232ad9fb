"""Shared by the experiments' analyze.py scripts: the line of a results page that says how the run
was made (command, date, duration, machine), and gnuplot where it is installed."""
import datetime, os, platform, shutil, subprocess


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def run_line(command, seconds):
    """e.g. "Run: `experiments/riemann/run.sh /tmp/mdemo` on 2026-11-23, 7 min 5 s on 2 cores (AMD EPYC ...)"."""
    return (f"Run: `{command}` on {datetime.date.today().isoformat()}, {seconds // 60} min {seconds % 60} s on "
            f"{os.cpu_count()} cores ({cpu_model()})")


def gnuplot(script, cwd):
    """Runs a gnuplot script in cwd; False (no plot) where gnuplot is not installed."""
    if not shutil.which("gnuplot"):
        return False
    subprocess.run(["gnuplot"], input=script, text=True, cwd=cwd, check=True)
    return True
