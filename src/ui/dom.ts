// Small helpers the page's sections share for what they write into the document.

/** "1 row", "2 rows". */
export const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;

/** A two-column table (header, value) with `entries` as its rows, in place of what it held. */
export function rows(table: HTMLElement, entries: [string, string][]): void {
  table.replaceChildren(
    ...entries.map(([k, v]) => {
      const tr = document.createElement('tr');
      const th = document.createElement('th');
      const td = document.createElement('td');
      th.textContent = k;
      td.textContent = v;
      tr.append(th, td);
      return tr;
    }),
  );
}
