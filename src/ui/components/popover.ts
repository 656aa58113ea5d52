/** Popovers made of <details>: Escape closes the one focus is in and gives focus back to its summary. */
import type { KeyboardEvent } from 'react';

export function closeOnEscape(ev: KeyboardEvent<HTMLDetailsElement>): void {
  const details = ev.currentTarget;
  if (ev.key !== 'Escape' || !details.open) return;
  ev.preventDefault();
  ev.stopPropagation();
  details.open = false;
  details.querySelector('summary')?.focus();
}

/** Open the Settings popover and put focus on one of its fields (a link from an error to the setting it names). */
export function openSettingsAt(fieldId: string): void {
  const settings = document.querySelector<HTMLDetailsElement>('details[data-testid="settings"]');
  if (!settings) return;
  settings.open = true;
  const field = document.getElementById(fieldId);
  field?.focus();
  if (field instanceof HTMLInputElement) field.select();
}
