// The smallest consumer of the package entry, compiled by scripts/check-types.sh with
// TypeScript's default es2022 libraries and no --skipLibCheck: its declarations compile as shipped.
import { Analytics } from '../../pkg/index.js';

const analytics = Analytics.load({});
analytics.track('Signed Up');
const loaded = await analytics;
loaded.track('Loaded');
