# The Jupyter Server configuration of Berth's Jupyter image (/etc/jupyter/jupyter_server_config.py).
#
# Who may open a notebook is decided by Kubernetes, not by a token: JupyterLab listens only inside
# the pod, the project's NetworkPolicies let only pods of the project's own namespace reach it, and
# people reach it with `kubectl port-forward` (RBAC: pods/portforward in the namespace, which only
# the project's owners and editors hold). Berth's operator reads the activity through the API
# server's pod proxy (pods/proxy). So the server asks for no token: there is no token to leak into
# a URL or a log, and none to hand out.
import os

c = get_config()  # noqa: F821 (provided by Jupyter's config loader)

# No token, no password: see above.
c.IdentityProvider.token = ""
c.PasswordIdentityProvider.hashed_password = ""
c.ServerApp.ip = "0.0.0.0"
c.ServerApp.port = int(os.environ.get("NB_PORT", "8888"))
c.ServerApp.open_browser = False
# Berth's path: /notebook/<namespace>/<name>/ (NB_PREFIX, as Kubeflow's images read it).
c.ServerApp.base_url = os.environ.get("NB_PREFIX", "/") or "/"
c.ServerApp.root_dir = os.environ.get("HOME", "/home/jovyan")
c.ServerApp.terminado_settings = {"shell_command": ["/bin/bash", "-l"]}
# No calls out of the cluster for news or updates.
c.LabApp.check_for_updates_class = "jupyterlab.handlers.announcements.NeverCheckForUpdate"
c.LabApp.news_url = None
