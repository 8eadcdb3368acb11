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
