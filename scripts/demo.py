"""The demo: run "Describe image" on bundled sample data through bioblend, print where to look.

Run by `make demo` after the local Galaxy is up (GALAXY_URL / GALAXY_USER_KEY from
`scripts/galaxy env`).
"""

import os
import sys

from bioblend.galaxy import GalaxyInstance

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SAMPLES = (("stack_imagej.tif", "tiff"), ("functional.nii", "nii1"))


def main():
    url, key = os.environ["GALAXY_URL"], os.environ["GALAXY_USER_KEY"]
    gi = GalaxyInstance(url, key=key)
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
    print(f"\nOpen {url}/histories/view?id={history['id']} to see the inputs and results "
          f"(log in as {os.environ.get('GALAXY_USER_EMAIL', 'the test user')}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
