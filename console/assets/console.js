// The console's own script (htmx does the rest): the "select all" box of the dead-letter table,
// and a cap on the live tail's rows. No inline scripts anywhere: the CSP forbids them.

document.addEventListener('change', (e) => {
  const t = e.target;
  if (!(t instanceof HTMLInputElement) || t.id !== 'select-all') return;
  for (const box of document.querySelectorAll('input[name="ids"]')) box.checked = t.checked;
});
document.addEventListener('htmx:sseMessage', () => {
  const rows = document.getElementById('tail-rows');
  while (rows && rows.children.length > 200) rows.lastElementChild.remove();
});
