// The smallest consumer, compiled by scripts/check-types.sh with TypeScript's default libraries
// for es2022 (no esnext.disposable in --lib, no --skipLibCheck): the declarations must compile
// as shipped.
import init, { Analytics } from '../../pkg/consent_analytics.js';

await init();
const analytics = await Analytics.load({});
analytics.track('Signed Up');
