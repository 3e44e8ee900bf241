#!/usr/bin/env python3
"""Checks the CI recipes of docs/ci against what scripts/test-containers.sh
runs: every YAML/TOML file parses, and each recipe passes exactly the
container flags the test cells use (argv[1], e.g. "--security-opt
seccomp=unconfined"), mounts the store where the image declares its volume,
and keeps the settings the recipe's comments promise. Prints "recipes ok"."""
import re
import shlex
import sys
import tomllib
from pathlib import Path

import yaml

root = Path(__file__).resolve().parent.parent
ci = root / "docs/ci"
flags = shlex.split(sys.argv[1])
problems = []


def check(cond, what):
    if not cond:
        problems.append(what)


containerfile = (root / "contrib/container/Containerfile").read_text()
m = re.search(r"^VOLUME (\S+)$", containerfile, re.M)
volume = m.group(1) if m else None
check(volume is not None, "Containerfile: no VOLUME for the store")
check(f"ENV KILN_ROOT={volume}" in containerfile, "Containerfile: KILN_ROOT is not its VOLUME")

docs = {p.name: list(yaml.safe_load_all(p.read_text())) for p in sorted(ci.glob("*.yml"))}

# GitLab: the runner's security_opt are docker's --security-opt values.
runner = tomllib.loads((ci / "gitlab-runner-config.toml").read_text())
opts = runner["runners"][0]["docker"]["security_opt"]
check(runner["runners"][0]["docker"].get("privileged") is False, "gitlab runner: privileged")
check([a for o in opts for a in ("--security-opt", o)] == flags, f"gitlab runner: security_opt {opts} != {flags}")
job = docs["gitlab-ci.yml"][0]["build-image"]
check(job["image"]["entrypoint"] == [""], "gitlab job: the image's kiln entrypoint is not reset")
check(job["variables"]["KILN_ROOT"] == volume, "gitlab job: KILN_ROOT is not the image's volume")
# The locked-down job: the docker-defaults cell of --isolation chroot (root, no flags).
locked = docs["gitlab-ci.yml"][0]["build-image-locked-down"]
check(locked["image"]["docker"]["user"] == "root", "gitlab locked-down job: not root")
check(locked["variables"].get("KILN_ISOLATION") == "chroot", "gitlab locked-down job: not chroot")
check(locked["variables"]["KILN_ROOT"] == volume, "gitlab locked-down job: KILN_ROOT is not the image's volume")

# GitHub: the container job's options, but for the user it runs as.
jobs = docs["github-actions.yml"][0]["jobs"]
options = shlex.split(jobs["container"]["container"]["options"])
check(options[:2] == ["--user", "root"], "github container job: not --user root")
check(options[2:] == flags, f"github container job: options {options[2:]} != {flags}")
check("apparmor" in str(jobs["vm"]["steps"]), "github vm job: no AppArmor profile")

# Kubernetes: seccomp Unconfined and the store on an emptyDir, both Jobs.
kjobs = docs["kubernetes-job.yml"]
check(len(kjobs) == 3, "kubernetes: expected three Jobs")
check(flags == ["--security-opt", "seccomp=unconfined"], "kubernetes: the flags changed, update the Jobs")
for j in kjobs:
    pod = j["spec"]["template"]["spec"]
    c = pod["containers"][0]
    name = j["metadata"]["name"]
    chroot = c["args"][1:3] == ["--isolation", "chroot"]
    seccomp = "RuntimeDefault" if chroot else "Unconfined"
    check(c["securityContext"]["seccompProfile"]["type"] == seccomp, f"{name}: seccomp")
    check(not chroot or c["securityContext"]["runAsUser"] == 0, f"{name}: chroot needs root")
    check(not c["securityContext"].get("privileged"), f"{name}: privileged")
    store = [m for m in c["volumeMounts"] if m["mountPath"] == volume]
    vols = {v["name"]: v for v in pod["volumes"]}
    check(len(store) == 1 and "emptyDir" in vols[store[0]["name"]], f"{name}: store not on an emptyDir")
    if pod.get("hostUsers") is False:
        check(c["securityContext"]["runAsUser"] == 0, f"{name}: userns pod not root")
    else:
        check("procMount" not in c["securityContext"], f"{name}: procMount needs hostUsers: false")

aa = (ci / "apparmor-kiln").read_text()
check(re.search(r"^\s*userns,$", aa, re.M) is not None, "apparmor: no userns rule")
attach = re.search(r"^profile kiln /\{([^}]*)\}/kiln ", aa, re.M)
check(attach is not None and "usr/local/bin" in attach.group(1).split(","), "apparmor: not attached to /usr/local/bin/kiln")
check("/usr/local/bin/kiln" in containerfile, "Containerfile: kiln is not /usr/local/bin/kiln")

if problems:
    print("\n".join(problems))
    sys.exit(1)
print("recipes ok")
