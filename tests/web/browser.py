"""Headless Chromium through the node's pages: welcome, a directory, an upload with the form,
a mkdir with the form, a download, the status page; a screenshot of each.

Usage: python3 browser.py NODE_URL SCREENSHOT_DIR

Drives Chromium over the DevTools protocol on a pipe (`--remote-debugging-pipe`: JSON messages
separated by NUL on fds 3 and 4), so it needs nothing beyond the standard library. The pages
themselves use no JavaScript; the script only uses it to read them and to press their buttons,
as a person would. Prints one PASS/FAIL line per step and `N passed, N failed`.
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

NODE, SHOTS = sys.argv[1].rstrip("/"), sys.argv[2]
os.makedirs(SHOTS, exist_ok=True)


class Browser:
    def __init__(self):
        self.profile = tempfile.mkdtemp()
        to_child_r, self.to_child = os.pipe()
        self.from_child, from_child_w = os.pipe()

        def fds():
            os.dup2(to_child_r, 3)
            os.dup2(from_child_w, 4)

        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        self.proc = subprocess.Popen(
            [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--mute-audio",
             "--user-data-dir=" + self.profile, "--window-size=1100,800", "about:blank"],
            preexec_fn=fds, pass_fds=(3, 4), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(to_child_r)
        os.close(from_child_w)
        self.buffer = b""
        self.next_id = 0
        self.events = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Runtime.enable", session=True)

    def read_message(self, deadline):
        while b"\0" not in self.buffer:
            if time.time() > deadline:
                raise TimeoutError("Chromium did not answer")
            chunk = os.read(self.from_child, 65536)
            if not chunk:
                raise EOFError("Chromium closed the pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method, session=False, timeout=30, **params):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self.to_child, json.dumps(message).encode() + b"\0")
        deadline = time.time() + timeout
        while True:
            reply = self.read_message(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError("%s: %s" % (method, reply["error"]))
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, name, timeout=30):
        deadline = time.time() + timeout
        while True:
            for i, event in enumerate(self.events):
                if event.get("method") == name:
                    del self.events[i]
                    return event
            self.events.append(self.read_message(deadline))

    def load(self, action):
        """Runs `action` (which navigates) and waits for the new page's load event."""
        self.events = [e for e in self.events if e.get("method") != "Page.loadEventFired"]
        action()
        self.wait_event("Page.loadEventFired")

    def goto(self, url):
        self.load(lambda: self.call("Page.navigate", session=True, url=url))

    def js(self, expression):
        result = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def screenshot(self, name):
        data = self.call("Page.captureScreenshot", session=True, format="png")["data"]
        with open(os.path.join(SHOTS, name), "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


def main():
    passed, failed = 0, 0

    def check(label, ok, detail=""):
        nonlocal passed, failed
        if ok:
            passed += 1
            print("PASS " + label)
        else:
            failed += 1
            print("FAIL %s %s" % (label, detail))
        sys.stdout.flush()

    request = urllib.request.Request(NODE + "/uri?t=mkdir", method="POST", data=b"")
    dircap = urllib.request.urlopen(request).read().decode()
    dir_url = NODE + "/uri/" + urllib.request.quote(dircap, safe="") + "/"
    upload = os.path.join(tempfile.mkdtemp(), "hello from chromium.txt")
    contents = "uploaded with the directory page's form\n"
    with open(upload, "w") as f:
        f.write(contents)
    browser = Browser()
    try:
        browser.goto(NODE + "/")
        text = browser.js("document.body.innerText")
        check("welcome page shows the servers", "storage servers" in text and "server-00" in text, text[:300])
        browser.screenshot("welcome.png")

        browser.goto(dir_url)
        check("directory page", "This directory is empty." in browser.js("document.body.innerText"))
        browser.screenshot("directory-empty.png")

        document = browser.call("DOM.getDocument", session=True)["root"]["nodeId"]
        node = browser.call("DOM.querySelector", session=True, nodeId=document, selector="#upload-file")["nodeId"]
        browser.call("DOM.setFileInputFiles", session=True, nodeId=node, files=[upload])
        browser.load(lambda: browser.js("document.getElementById('upload-submit').click()"))
        names = browser.js("[...document.querySelectorAll('table.tahoe-directory a')].map(a => a.textContent)")
        check("upload with the form lists the file", "hello from chromium.txt" in (names or []), repr(names))

        browser.js("document.getElementById('mkdir-name').value = 'made in a browser'")
        browser.load(lambda: browser.js("document.getElementById('mkdir-submit').click()"))
        text = browser.js("document.body.innerText")
        check("mkdir with the form lists the directory", "made in a browser" in text and "DIR" in text, text[:300])
        browser.screenshot("directory.png")

        href = browser.js("[...document.querySelectorAll('table.tahoe-directory a')]"
                          ".find(a => a.textContent == 'hello from chromium.txt').href")
        browser.goto(href)
        shown = (browser.js("document.body.innerText") or "").strip()
        check("download through the file link", shown == contents.strip(), repr(shown))

        browser.goto(NODE + "/status")
        text = browser.js("document.body.innerText")
        check("status page lists the upload", "upload" in text and "Finished" in text, text[:300])
        browser.screenshot("status.png")
    finally:
        browser.close()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
