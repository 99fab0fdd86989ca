// "Copy link" buttons on the dashboard; without JavaScript the link stays selectable text.
document.querySelectorAll("[data-copy]").forEach(function (button) {
  var source = document.getElementById(button.dataset.copy);
  if (!source || !navigator.clipboard) return;
  button.hidden = false;
  button.addEventListener("click", function () {
    navigator.clipboard.writeText(source.value).then(function () {
      button.textContent = "Copied";
    });
  });
});
