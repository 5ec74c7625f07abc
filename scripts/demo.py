"""The demo: run "Describe image" on bundled sample data through bioblend, print where to look.

Run by `make demo` after the local Galaxy is up (GALAXY_URL / GALAXY_ADMIN_KEY from
`scripts/galaxy env`); works as a demo user whose login it prints.
"""

import os
import sys

from bioblend.galaxy import GalaxyInstance

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SAMPLES = (("stack_imagej.tif", "tiff"), ("functional.nii", "nii1"))
# A demo login for the browser. The server listens on 127.0.0.1 only.
DEMO_EMAIL, DEMO_USER, DEMO_PASSWORD = "demo@neurostation.local", "demo", "neurostation-demo"


def demo_user_key(admin):
    """The demo user's API key, creating the user (with a known password) on first use."""
    users = admin.users.get_users(f_email=DEMO_EMAIL)
    user = users[0] if users else admin.users.create_local_user(DEMO_USER, DEMO_EMAIL, DEMO_PASSWORD)
    return admin.users.get_or_create_user_apikey(user["id"])


def main():
    url = os.environ["GALAXY_URL"]
    admin = GalaxyInstance(url, key=os.environ["GALAXY_ADMIN_KEY"])
    gi = GalaxyInstance(url, key=demo_user_key(admin))
    history = gi.histories.create_history("NeuroStation demo")
    print(f"history 'NeuroStation demo' ({history['id']})", flush=True)
    for name, ext in SAMPLES:
        upload = gi.tools.upload_file(os.path.join(ROOT, "test-data", name), history["id"],
                                      file_type=ext, file_name=name)
        dataset = upload["outputs"][0]
        gi.datasets.wait_for_dataset(dataset["id"])
        run = gi.tools.run_tool(history["id"], "ns_image_info",
                                {"input": {"src": "hda", "id": dataset["id"]}})
        result = run["outputs"][0]
        gi.datasets.wait_for_dataset(result["id"], maxwait=600)
        text = gi.datasets.download_dataset(result["id"]).decode()
        print(f"\n== Describe image on {name} (dataset {result['hid']}: {result['name']})")
        print(text, end="")
    print(f"\nOpen {url} and log in as {DEMO_EMAIL} / {DEMO_PASSWORD}; the history "
          f"'NeuroStation demo' holds the inputs and results:\n  {url}/histories/view?id={history['id']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
