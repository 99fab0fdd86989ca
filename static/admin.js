// "Copy link" buttons on the dashboard; without JavaScript the link stays selectable text.
// A screen reader is told of the copy through a status region that is there, empty, before
// it (a region added with its text is often not announced); the button's "Copied" is for eyes.
document.querySelectorAll("[data-copy]").forEach(function (button) {
  var source = document.getElementById(button.dataset.copy);
  if (!source || !navigator.clipboard) return;
  var status = document.createElement("span");
  status.className = "visually-hidden";
  status.setAttribute("role", "status");
  button.after(status);
  button.hidden = false;
  button.addEventListener("click", function () {
    navigator.clipboard.writeText(source.value).then(function () {
      button.textContent = "Copied";
      status.textContent = (source.getAttribute("aria-label") || "Link") + " copied";
    });
  });
});

// A question before an action that cannot be undone is a <details> and works without
// JavaScript ("Keep as is" then reloads the order page). Here "Keep as is" and Escape close it
// and give the focus back to the button that opened it.
document.querySelectorAll("details.confirm").forEach(function (details) {
  var opener = details.querySelector("summary");
  function keep(event) {
    event.preventDefault();
    details.open = false;
    opener.focus();
  }
  details.querySelectorAll("[data-keep]").forEach(function (link) {
    link.addEventListener("click", keep);
  });
  details.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && details.open) keep(event);
  });
});

// A form sent is not sent again by a second tap while the answer is on its way (a slow phone
// network): its button waits. The server refuses a repeated refund anyway (money_seen); this
// spares the owner the refusal. Back to a page kept in memory brings the buttons back.
document.querySelectorAll("form[method=post]").forEach(function (form) {
  form.addEventListener("submit", function () {
    form.querySelectorAll("button[type=submit]").forEach(function (button) {
      window.setTimeout(function () { button.disabled = true; }, 0);
    });
  });
});
window.addEventListener("pageshow", function (event) {
  if (!event.persisted) return;
  document.querySelectorAll("form[method=post] button[type=submit]").forEach(function (button) {
    button.disabled = false;
  });
});
