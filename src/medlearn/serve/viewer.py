"""The web viewer of ``medlearn serve``: one static page that asks for a token, lists the served models, sends an
image and shows the result (class probabilities as bars; a segmentation's overlay, label sizes and a link to the
mask). The token stays in the tab's session storage and goes only into the Authorization header of the API calls.
"""

VIEWER_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>medlearn viewer</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 0; background: #f5f7fa; color: #1d2733; }
  header { background: #1d3557; color: white; padding: 14px 28px; }
  header h1 { margin: 0; font-size: 20px; }
  header p { margin: 4px 0 0; font-size: 13px; opacity: 0.85; }
  main { max-width: 980px; margin: 24px auto; padding: 0 20px; }
  section { background: white; border: 1px solid #dde3ea; border-radius: 8px; padding: 18px 22px; margin-bottom: 18px; }
  label { display: block; font-size: 13px; font-weight: 600; margin: 10px 0 4px; }
  input[type=password], select { width: 100%; padding: 8px; border: 1px solid #c5ced8; border-radius: 5px; }
  button { margin-top: 14px; background: #1d3557; color: white; border: 0; border-radius: 5px; padding: 9px 18px;
           font-size: 14px; cursor: pointer; }
  button:disabled { background: #8795a6; cursor: wait; }
  .row { display: grid; grid-template-columns: 1fr 1fr; gap: 18px; }
  .error { color: #b3261e; font-weight: 600; }
  .bar { background: #e3e8ee; border-radius: 4px; height: 22px; margin: 4px 0 10px; position: relative; }
  .bar span { display: block; height: 100%; background: #2a9d8f; border-radius: 4px; }
  .bar em { position: absolute; left: 8px; top: 2px; font-style: normal; font-size: 13px; }
  table { border-collapse: collapse; margin-top: 8px; }
  td, th { border-bottom: 1px solid #e3e8ee; padding: 5px 12px 5px 0; text-align: left; font-size: 14px; }
  img.overlay { width: 100%; image-rendering: pixelated; border: 1px solid #dde3ea; border-radius: 4px; }
  .note { font-size: 12px; color: #5b6b7c; }
</style>
</head>
<body>
<header>
  <h1>medlearn viewer</h1>
  <p>Research software, not a medical device: results are for research and must not guide care.</p>
</header>
<main>
  <section>
    <div class="row">
      <div>
        <label for="token">Access token</label>
        <input id="token" type="password" autocomplete="off" placeholder="paste the token you were given">
      </div>
      <div>
        <label for="model">Model</label>
        <select id="model"><option value="">(enter the token to list models)</option></select>
      </div>
    </div>
    <label for="file">Image (DICOM file, NIfTI, NRRD, PNG/JPEG/TIFF, or a ZIP of a DICOM series)</label>
    <input id="file" type="file">
    <div><button id="run">Run</button> <span id="status" class="note"></span></div>
  </section>
  <section id="result" hidden></section>
</main>
<script>
const $ = (id) => document.getElementById(id);
const token = $("token");
token.value = sessionStorage.getItem("medlearn-token") || "";
const headers = () => ({ "Authorization": "Bearer " + token.value.trim() });

async function listModels() {
  if (!token.value.trim()) return;
  sessionStorage.setItem("medlearn-token", token.value.trim());
  const answer = await fetch("models", { headers: headers() });
  const select = $("model");
  if (!answer.ok) { select.innerHTML = "<option value=''>(token refused)</option>"; return; }
  const models = await answer.json();
  select.innerHTML = models.map((m) =>
    `<option value="${m.name}">${m.name} (${m.task}${m.classes ? ": " + m.classes.join(", ") : ""})</option>`).join("");
}

function text(value) { const span = document.createElement("span"); span.textContent = value; return span.innerHTML; }

function show(result) {
  const box = $("result");
  box.hidden = false;
  if (result.task === "classification") {
    const bars = Object.entries(result.probabilities).map(([name, p]) =>
      `<div class="bar"><span style="width:${(100 * p).toFixed(1)}%"></span>` +
      `<em>${text(name)}: ${(100 * p).toFixed(1)}%</em></div>`);
    box.innerHTML = `<h2>Prediction: ${text(result.prediction)}</h2>${bars.join("")}
      <p class="note">Calibrated probabilities (temperature scaling on the run's validation images);
      ${result.seconds} s.</p>`;
  } else {
    const rows = Object.entries(result.sizes).map(([key, v]) => {
      const unit = key.startsWith("volume_ml") ? "ml" : "mm²";
      return `<tr><td>label ${text(key.split("_").pop())}</td><td>${v} ${unit}</td></tr>`;
    });
    box.innerHTML = `<h2>Segmentation</h2><div class="row"><div>
      <img class="overlay" alt="mask over the image" src="data:image/png;base64,${result.overlay_png}"></div><div>
      <table><tr><th>label</th><th>size</th></tr>${rows.join("")}</table>
      <p class="note">Image ${result.shape.join(" x ")} at ${result.spacing_mm.join(" x ")} mm; ${result.seconds} s.</p>
      <button id="mask">Download the mask</button></div></div>`;
    $("mask").onclick = () => send("mask");
  }
}

async function send(output) {
  const file = $("file").files[0];
  if (!file || !$("model").value) {
    $("status").innerHTML = "<span class='error'>choose a model and an image</span>";
    return;
  }
  const form = new FormData();
  form.append("file", file);
  $("run").disabled = true;
  $("status").textContent = "running...";
  try {
    const answer = await fetch(`models/${encodeURIComponent($("model").value)}/predict?output=${output}`,
                               { method: "POST", headers: headers(), body: form });
    if (!answer.ok) {
      const problem = await answer.json().catch(() => ({ detail: answer.statusText }));
      $("status").innerHTML = `<span class="error">${text(problem.detail)}</span>`;
      return;
    }
    if (output === "mask") {
      const link = document.createElement("a");
      link.href = URL.createObjectURL(await answer.blob());
      link.download = answer.headers.get("content-type") === "image/png" ? "mask.png" : "mask.nii.gz";
      link.click();
    } else {
      show(await answer.json());
    }
    $("status").textContent = "";
  } finally {
    $("run").disabled = false;
  }
}

token.addEventListener("change", listModels);
$("run").onclick = () => send("json");
listModels();
</script>
</body>
</html>
"""
