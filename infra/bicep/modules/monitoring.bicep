// Log Analytics (container stdout/stderr: our JSON log lines) and workspace-based Application
// Insights (OpenTelemetry traces, metrics and logs from app/observability.py).
param prefix string
param location string
param tags object
@minValue(30)
param logRetentionDays int

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${prefix}-logs'
  location: location
  tags: tags
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: logRetentionDays
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: '${prefix}-insights'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
    IngestionMode: 'LogAnalytics'
  }
}

output logAnalyticsId string = logs.id
output logAnalyticsName string = logs.name
output insightsName string = insights.name
