"use strict";
// The page of `nnlayers serve`: photos in, class probabilities and an explanation's overlay out.
// Everything goes through the JSON API of the same server (/api/model, /api/predict, /api/explain).

const $ = (id) => document.getElementById(id);
let chosen = [];  // the photos picked or dropped, kept to explain again with another method

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function answer(response) {
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    throw new Error((body && body.error) || `the server answered ${response.status} ${response.statusText}`);
  }
  return body;
}

function form(extra) {
  const data = new FormData();
  for (const file of chosen) data.append("files", file, file.name);
  for (const [key, value] of Object.entries(extra || {})) data.append(key, value);
  return data;
}

function bars(top) {
  return top.map((t) => {
    const row = document.createElement("div");
    row.className = "bar";
    const label = document.createElement("span");
    label.textContent = t.label;
    const track = document.createElement("span");
    track.className = "track";
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.width = `${(100 * t.probability).toFixed(1)}%`;
    track.appendChild(fill);
    const value = document.createElement("span");
    value.className = "probability";
    value.textContent = t.probability.toFixed(3);
    row.append(label, track, value);
    return row;
  });
}

function render(predictions, explanations) {
  const results = $("results");
  results.replaceChildren();
  predictions.forEach((p, i) => {
    const card = document.createElement("article");
    card.className = "card";
    const img = document.createElement("img");
    img.className = "overlay";
    img.alt = `${explanations[i].method} map of ${p.name}`;
    img.src = explanations[i].overlay;
    const title = document.createElement("h2");
    title.className = "label";
    title.textContent = `${p.label} ${p.probability.toFixed(3)}`;
    const name = document.createElement("div");
    name.className = "name";
    name.textContent = `${p.name}: ${explanations[i].method} of "${explanations[i].explained}"`;
    card.append(img, title, name, ...bars(p.top));
    results.appendChild(card);
  });
}

async function run() {
  if (!chosen.length) return;
  showError("");
  $("status").textContent = `Looking at ${chosen.length} photo${chosen.length > 1 ? "s" : ""}...`;
  try {
    const method = $("method").value;
    const alpha = $("alpha").value;
    const [predictions, explanations] = await Promise.all([
      fetch("/api/predict", { method: "POST", body: form() }).then(answer),
      fetch("/api/explain", { method: "POST", body: form({ method, alpha, format: "json" }) }).then(answer),
    ]);
    render(predictions, explanations);
    $("status").textContent = `${predictions.length} photo${predictions.length > 1 ? "s" : ""}, ${method}.`;
  } catch (error) {
    $("status").textContent = "";
    showError(error.message);
  }
}

function choose(files) {
  chosen = Array.from(files);
  run();
}

async function start() {
  try {
    const model = await fetch("/api/model").then(answer);
    $("model-summary").textContent =
      `${model.name}: ${model.classes.length} classes (${model.classes.join(", ")}), ` +
      `photos at ${model.input_size[0]}x${model.input_size[1]}`;
    $("model-classes").textContent = model.classes.join(", ");
    $("model-input").textContent = `${model.input_size[0]} x ${model.input_size[1]} pixels, RGB`;
    $("model-parameters").textContent = model.parameters.toLocaleString("en");
    $("model-cam-layer").textContent = model.cam_layer === null ? "none (a dense model)" : model.cam_layer;
    $("model-architecture").textContent = model.architecture;
    for (const method of model.methods) {
      const option = document.createElement("option");
      option.value = method;
      option.textContent = method;
      $("method").appendChild(option);
    }
  } catch (error) {
    showError(`Could not read the model: ${error.message}`);
  }
  $("files").addEventListener("change", (event) => choose(event.target.files));
  $("method").addEventListener("change", run);
  $("alpha").addEventListener("change", run);
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    choose(event.dataTransfer.files);
  });
}

start();
