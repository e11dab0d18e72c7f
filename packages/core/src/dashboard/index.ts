export type { DashboardHandler, DashboardOptions } from './handler.js';
export { createDashboard } from './handler.js';
