# berth-demo/jupyter: the Jupyter Notebook server's settings (read from
# /etc/jupyter by every notebook the image starts).
#
# berth guards the workspace (only its owner gets through nginx to the
# container, whose port is not published), so Jupyter's own token and password
# are off. Its XSRF protection stays on: a state-changing request must carry
# the _xsrf cookie's value in X-XSRFToken (the notebook's pages do that), and
# WebSockets must come from the page's own origin -- nginx passes the browser's
# Host on, so berth's workspace origin (http://alice.localhost:8080) matches.
import os

c = get_config()  # noqa: F821 (defined by Jupyter when it reads this file)

c.NotebookApp.ip = "0.0.0.0"
c.NotebookApp.port = int(os.environ.get("JUPYTER_PORT", "8888"))
c.NotebookApp.open_browser = False
# berth's template passes {base_path} (/container/<user>/<instance>/) with
# proxy_mode keep: Jupyter serves every page and API under it.
c.NotebookApp.base_url = os.environ.get("BERTH_BASE_PATH") or "/"
c.NotebookApp.token = ""
c.NotebookApp.password = ""
c.NotebookApp.disable_check_xsrf = False
# The Host header is the workspace's (not localhost): berth, not Jupyter's
# DNS-rebinding check, decides who reaches it.
c.NotebookApp.allow_remote_access = True
c.NotebookApp.trust_xheaders = True
c.NotebookApp.quit_button = False
c.NotebookApp.notebook_dir = os.environ.get("JUPYTER_NOTEBOOK_DIR") or os.path.expanduser("~")
