// Small progressive enhancements; every page works without them.
"use strict";

// Live character counter for reply boxes: <textarea data-counter="ID" maxlength="N">.
function updateCounter(textarea) {
  const counter = document.getElementById(textarea.dataset.counter);
  if (!counter) return;
  // X counts code points, not UTF-16 units: an emoji is one character.
  const length = Array.from(textarea.value).length;
  counter.textContent = String(length);
  counter.closest(".hint")?.classList.toggle("over", length > Number(textarea.maxLength));
}

document.addEventListener("input", (event) => {
  if (event.target.matches("textarea[data-counter]")) {
    updateCounter(event.target);
    // Colleagues' mention pages show "writing a reply" from the next heartbeat on.
    const state = document.getElementById("presence-state");
    if (state) state.value = "drafting";
  }
});
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("textarea[data-counter]").forEach(updateCounter);
});

// Keyboard flow for the queue and the mention page (press ? for the list).
const rows = () => Array.from(document.querySelectorAll(".mention-row"));
let currentMention = null; // survives the queue's refreshes: rows are found again by id

function focusRow(row) {
  if (!row) return;
  rows().forEach((r) => r.classList.remove("current"));
  row.classList.add("current");
  row.focus({ preventScroll: true });
  row.scrollIntoView({ block: "nearest" });
  currentMention = row.id;
}

function moveFocus(step) {
  const all = rows();
  if (!all.length) return;
  const index = all.findIndex((row) => row.id === currentMention);
  const next = index === -1 ? 0 : Math.min(Math.max(index + step, 0), all.length - 1);
  focusRow(all[next]);
}

const currentRow = () => (currentMention ? document.getElementById(currentMention) : null);

function typingInField(event) {
  const target = event.target;
  return target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName);
}

const shortcuts = {
  j: () => moveFocus(1),
  k: () => moveFocus(-1),
  c: () => currentRow()?.querySelector("button[formaction$='/claim/']")?.click(),
  n: () => document.getElementById("claim-next")?.click(),
  r: () => openCurrent(),
  Enter: () => openCurrent(),
  x: () => currentRow()?.querySelector("input[type=checkbox]")?.click(),
  e: () => document.querySelector("form[action$='/resolve/'] button")?.click(),
  "?": () => document.getElementById("shortcuts")?.showModal(),
};

function openCurrent() {
  const row = currentRow();
  if (row) {
    window.location.href = row.dataset.url;
    return;
  }
  // On a mention page, "r" goes to the reply box.
  document.querySelector("textarea[data-counter]")?.focus();
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || typingInField(event)) return;
  const action = shortcuts[event.key];
  if (!action) return;
  event.preventDefault();
  action();
});

document.addEventListener("click", (event) => {
  if (event.target.closest("[data-shortcuts-open]")) {
    document.getElementById("shortcuts")?.showModal();
  }
});

// After the queue refreshes, keep the agent's place.
document.addEventListener("htmx:afterSwap", () => {
  const row = currentRow();
  if (row) row.classList.add("current");
});

// "Use this" on an alternative draft: it replaces the reply text (the counter follows).
document.addEventListener("click", (event) => {
  const button = event.target.closest(".use-draft");
  if (!button) return;
  const box = document.querySelector(".reply-form textarea[name='text']");
  if (!box) return;
  box.value = button.dataset.draft;
  box.dispatchEvent(new Event("input", { bubbles: true }));
  box.focus();
});
