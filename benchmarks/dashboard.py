"""Publish the asv dashboard so that it works with no internet.

    python benchmarks/dashboard.py [--config benchmarks/asv.conf.json] [--serve PORT]

asv's pages load jQuery, flot, flot-orderbars, stupidtable, blueimp-md5 and bootstrap from
CDNs.  This runs `asv publish`, fetches those packages from the npm registry (`npm pack`, cached
under benchmarks/.asv/vendor), copies the files into html/vendor/ and points the pages at them
(dropping the CDN integrity attributes).  No third-party file is committed.
"""
from __future__ import annotations

import argparse
import http.server
import json
import re
import shutil
import subprocess
import sys
import tarfile
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
# CDN file name -> (npm package@version, path inside the package)
ASSETS = {
    "jquery-3.3.1.min.js": ("jquery@3.3.1", "package/dist/jquery.min.js"),
    "jquery.flot.min.js": ("flot@0.8.3", "package/jquery.flot.js"),
    "jquery.flot.time.min.js": ("flot@0.8.3", "package/jquery.flot.time.js"),
    "jquery.flot.selection.min.js": ("flot@0.8.3", "package/jquery.flot.selection.js"),
    "jquery.flot.categories.min.js": ("flot@0.8.3", "package/jquery.flot.categories.js"),
    "jquery.flot.orderBars.js": ("flot-orderbars@1.0.0", "package/js/jquery.flot.orderBars.js"),
    "stupidtable.min.js": ("stupid-table-plugin@1.1.3", "package/stupidtable.min.js"),
    "md5.min.js": ("blueimp-md5@2.19.0", "package/js/md5.min.js"),
    "bootstrap.min.js": ("bootstrap@3.1.1", "package/dist/js/bootstrap.min.js"),
    "bootstrap.min.css": ("bootstrap@3.1.1", "package/dist/css/bootstrap.min.css"),
}


def fetch(cache: Path) -> dict:
    """npm pack each package once into cache; returns {file name: path on disk}."""
    cache.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, (pkg, inner) in ASSETS.items():
        target = cache / pkg / Path(inner).name
        if not target.exists():
            tgz = list((cache / pkg).glob("*.tgz")) if (cache / pkg).exists() else []
            if not tgz:
                (cache / pkg).mkdir(parents=True, exist_ok=True)
                r = subprocess.run(["npm", "pack", pkg, "--silent"], cwd=cache / pkg,
                                   capture_output=True, text=True, timeout=300)
                if r.returncode != 0:
                    raise SystemExit(f"dashboard: npm pack {pkg} failed: {r.stderr.strip()[:300]}")
                tgz = list((cache / pkg).glob("*.tgz"))
            with tarfile.open(tgz[0]) as tf:
                member = tf.getmember(inner)
                with tf.extractfile(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        out[name] = target
    return out


_TAG = re.compile(r'<(script|link)\b[^>]*?(?:src|href)="(https?://[^"]+)"[^>]*>')


def localize(html_dir: Path, files: dict) -> int:
    """Point every CDN <script>/<link> of the published pages at html/vendor/."""
    vendor = html_dir / "vendor"
    vendor.mkdir(exist_ok=True)
    for name, path in files.items():
        shutil.copyfile(path, vendor / name)
    changed = 0
    for page in html_dir.glob("*.html"):
        text = page.read_text()

        def repl(m):
            url = m.group(2)
            name = url.rsplit("/", 1)[-1]
            if name not in files:
                return m.group(0)
            t = m.group(0).replace(url, f"vendor/{name}")
            t = re.sub(r'\s(integrity|crossorigin|referrerpolicy)="[^"]*"', "", t)
            return t
        new = _TAG.sub(repl, text)
        if new != text:
            page.write_text(new)
            changed += 1
    return changed


def publish(config: Path, env=None) -> Path:
    subprocess.run([sys.executable, "-m", "asv", "publish", "--config", str(config)], check=True,
                   env=env)
    conf = json.loads(config.read_text())
    html = Path(conf.get("html_dir", "html"))
    return html if html.is_absolute() else (config.parent / html)


def serve(html_dir: Path, port: int):
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(html_dir))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as httpd:
        print(f"dashboard: serving {html_dir} at http://127.0.0.1:{httpd.server_port}/ (Ctrl-C ends)")
        httpd.serve_forever()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(HERE / "asv.conf.json"))
    ap.add_argument("--cache", default=str(HERE / ".asv" / "vendor"))
    ap.add_argument("--no-publish", action="store_true", help="only localize an existing html dir")
    ap.add_argument("--serve", type=int, default=None, metavar="PORT")
    args = ap.parse_args(argv)
    config = Path(args.config).resolve()
    if args.no_publish:
        conf = json.loads(config.read_text())
        html = config.parent / conf.get("html_dir", "html")
    else:
        html = publish(config)
    n = localize(html, fetch(Path(args.cache)))
    print(f"dashboard: {html} uses local copies of its JavaScript ({n} pages rewritten)")
    if args.serve is not None:
        serve(html, args.serve)


if __name__ == "__main__":
    main()
