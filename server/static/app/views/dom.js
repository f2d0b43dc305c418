// Small helpers to build the screens from elements, never from HTML strings.

// h("button", { type: "submit", onclick }, "Save"): attributes starting with "on" are
// listeners; `hidden`, `disabled` and the like take booleans; children may be strings.
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      element.className = value;
    } else if (value === true) {
      element.setAttribute(name, "");
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
}

export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

// A labelled input: <label for>…</label><input id>. Returns [wrapper, input].
let fieldCount = 0;
export function field(label, attrs = {}) {
  const id = `f${++fieldCount}`;
  const input = h("input", { id, ...attrs });
  return [h("div", { class: "field" }, h("label", { for: id }, label), input), input];
}

// The place next to a form where its errors appear, read out when they do.
export function alertBox() {
  return h("p", { class: "error", role: "alert", hidden: true });
}

export function showError(box, error) {
  box.textContent = plainMessage(error);
  box.hidden = false;
}

export function clearError(box) {
  box.textContent = "";
  box.hidden = true;
}

// The server's message, with its first letter up and a full stop.
export function plainMessage(error) {
  const text = String((error && error.message) || error || "Something went wrong.");
  const sentence = text.charAt(0).toUpperCase() + text.slice(1);
  return /[.!?…]$/.test(sentence) ? sentence : `${sentence}.`;
}

// Run `action` for a form's submit: its button disabled meanwhile, errors into `box`.
export function onSubmit(form, box, action) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError(box);
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    try {
      await action();
    } catch (error) {
      showError(box, error);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  });
}

export function when(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString();
}
