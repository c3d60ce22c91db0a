# Sourced by the device scripts: cubecl compiles kernels with NVRTC at run time; when the loader
# does not know it, find it in the Python environment's NVIDIA wheels.
if ! ldconfig -p | grep -q libnvrtc; then
  nvrtc=$(python3 - <<'PY' 2>/dev/null
import glob, os, site
for root in site.getsitepackages():
    for lib in glob.glob(os.path.join(root, "nvidia", "**", "libnvrtc.so*"), recursive=True):
        print(os.path.dirname(lib)); raise SystemExit
PY
)
  [ -n "$nvrtc" ] && export LD_LIBRARY_PATH=$nvrtc:${LD_LIBRARY_PATH:-}
fi
